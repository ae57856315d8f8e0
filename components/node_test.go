package components

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/google/go-cmp/cmp"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/bundle/bundletest"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/podnet"
	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
)

// fakeCache is an artifact cache with a small stand-in file for every
// artifact of the newest release.
func fakeCache(t *testing.T) *bundle.Cache { return bundletest.Cache(t) }

// fakePKI serves every file and kubeconfig as a placeholder naming it,
// and the encryption keyring as testKeyring (security_test.go).
type fakePKI struct{}

func (fakePKI) File(rel string) ([]byte, error) {
	if rel == pki.KeyringFile {
		return testKeyring().Marshal()
	}
	return []byte("pki:" + rel), nil
}
func (fakePKI) Kubeconfig(name string) ([]byte, error) { return []byte("kubeconfig:" + name), nil }

const testSpec = `
cluster "t" {
  kubernetes_version = "1.37.2"
  pod_cidr           = "10.244.0.0/16"
  service_cidr       = "10.96.0.0/12"
}
ssh {
  user = "root"
  identity_files = ["/dev/null"]
  known_hosts_file = "/dev/null"
}
host "cp-1" {
  address = "10.0.0.11"
  roles   = ["control-plane", "etcd"]
}
host "worker-1" {
  address = "10.0.0.12"
  roles   = ["worker"]
  labels  = { "disk" = "ssd", "topology.kubernetes.io/zone" = "a", "node-role.kubernetes.io/gpu" = "" }
  taints  = ["dedicated=batch:NoExecute"]
}
host "worker-2" {
  address = "10.0.0.13"
  roles   = ["worker"]
}
`

func loadSpec(t *testing.T, src string) *spec.Cluster {
	t.Helper()
	return loadSpecEnv(t, src, []string{})
}

func loadSpecEnv(t *testing.T, src string, env []string) *spec.Cluster {
	t.Helper()
	c, diags := spec.Parse(map[string][]byte{"cluster.hcl": []byte(src)}, spec.VarInputs{Env: env})
	if diags.HasErrors() {
		t.Fatalf("spec: %v", diags)
	}
	return c
}

// labFacts are the facts of a lab host on this kind of machine: cgroup v1,
// no systemd, no CAP_SYS_RESOURCE, no swap, the usual tools.
func labFacts() provision.Facts {
	return provision.Facts{Machine: "x86_64", Arch: "amd64", CgroupVersion: 1, CapEff: 0x1fffeffffff,
		Tools: map[string]string{"iptables": "/usr/sbin/iptables", "mount": "/usr/bin/mount", "umount": "/usr/bin/umount"}}
}

// systemdFacts are a real host's: cgroup v2, systemd, every capability,
// swap on.
func systemdFacts() provision.Facts {
	f := labFacts()
	f.CgroupVersion, f.SystemdPID1, f.CapEff, f.SwapOn = 2, true, 0x1ffffffffff, true
	return f
}

func testInput(t *testing.T, c *spec.Cluster, facts func() provision.Facts) Input {
	in := Input{Cluster: c, PKI: fakePKI{}, Cache: fakeCache(t), Facts: map[string]provision.Facts{},
		Lab: map[string]LabHost{}, Installed: map[string]Installed{}}
	for _, h := range c.Hosts() {
		in.Facts[h.Name] = facts()
	}
	return in
}

func render(t *testing.T, in Input, comp, host string) Desired {
	t.Helper()
	h, ok := in.Cluster.Host(host)
	if !ok {
		t.Fatalf("no host %s", host)
	}
	d, err := renderer(comp)(in, h)
	if err != nil {
		t.Fatalf("%s on %s: %v", comp, host, err)
	}
	if _, err := d.GenerationFiles(); err != nil {
		t.Fatalf("%s on %s: %v", comp, host, err)
	}
	return d
}

func configFile(t *testing.T, d Desired, name string) string {
	t.Helper()
	for _, f := range d.Config {
		if f.Path == name {
			return string(f.Data)
		}
	}
	t.Fatalf("%s on %s has no config file %s", d.Component, d.Host, name)
	return ""
}

func installedWithCIDR(cidr string) Installed {
	return Installed{Components: map[string]InstalledComponent{
		bundle.CNI: {Generation: Generation{Number: 1, Args: []string{"agent", "cni", "--config=network.json", "--pod-cidr=" + cidr}}},
	}}
}

func TestPodCIDRs(t *testing.T) {
	c := loadSpec(t, testSpec)
	tests := []struct {
		name     string
		recorded map[string]string
		want     map[string]string
	}{
		{"fresh cluster: spec order", nil,
			map[string]string{"cp-1": "10.244.0.0/24", "worker-1": "10.244.1.0/24", "worker-2": "10.244.2.0/24"}},
		{"recorded ranges are kept; new nodes take the lowest free one",
			map[string]string{"worker-1": "10.244.7.0/24", "worker-2": "10.244.0.0/24"},
			map[string]string{"cp-1": "10.244.1.0/24", "worker-1": "10.244.7.0/24", "worker-2": "10.244.0.0/24"}},
		{"a range outside the pod CIDR or of another size is reallocated",
			map[string]string{"worker-1": "10.99.0.0/24", "worker-2": "10.244.4.0/25"},
			map[string]string{"cp-1": "10.244.0.0/24", "worker-1": "10.244.1.0/24", "worker-2": "10.244.2.0/24"}},
		{"two hosts claiming one range: the later one in spec order moves",
			map[string]string{"cp-1": "10.244.3.0/24", "worker-1": "10.244.3.0/24"},
			map[string]string{"cp-1": "10.244.3.0/24", "worker-1": "10.244.0.0/24", "worker-2": "10.244.1.0/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Cluster: c, Installed: map[string]Installed{}}
			for h, cidr := range tt.recorded {
				in.Installed[h] = installedWithCIDR(cidr)
			}
			got, err := in.PodCIDRs()
			if err != nil {
				t.Fatal(err)
			}
			gotS := map[string]string{}
			for h, p := range got {
				gotS[h] = p.String()
			}
			if d := cmp.Diff(tt.want, gotS); d != "" {
				t.Errorf("PodCIDRs (-want +got):\n%s", d)
			}
		})
	}
}

func TestPreflightListsEveryHost(t *testing.T) {
	c := loadSpec(t, testSpec)
	in := testInput(t, c, labFacts)
	if err := Preflight(in); err != nil {
		t.Fatalf("Preflight with every tool: %v", err)
	}
	f := labFacts()
	delete(f.Tools, "iptables")
	in.Facts["worker-1"] = f
	f = labFacts()
	delete(f.Tools, "mount")
	f.CgroupVersion = 0
	in.Facts["worker-2"] = f
	err := Preflight(in)
	if err == nil {
		t.Fatal("Preflight passed with missing tools")
	}
	for _, want := range []string{
		"host worker-1: missing tools: iptables (for cni, kube-proxy)",
		"host worker-2: missing tools: mount (for kubelet)",
		"host worker-2: no cgroup hierarchy",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Preflight error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "cp-1") {
		t.Errorf("Preflight blames cp-1, which has everything:\n%v", err)
	}
}

// Lab hosts share one kernel: the inotify they need adds up, and the
// preflight names the limit, the hosts and the fix before anything starts.
func TestPreflightInotifyLimits(t *testing.T) {
	c := loadSpec(t, testSpec)
	in := testInput(t, c, labFacts)
	for _, h := range c.Hosts() {
		f := labFacts()
		f.InotifyInstances, f.InotifyWatches = 128, 1048576
		in.Facts[h.Name] = f
	}
	if err := Preflight(in); err != nil {
		t.Fatalf("real hosts at the default 128 instances: %v", err)
	}
	for i := range 10 { // the spec's hosts are lab hosts; seven more share the kernel
		name := c.Hosts()[i%len(c.Hosts())].Name
		in.Lab[name] = LabHost{Lab: "ab12", Host: name}
	}
	for i := len(in.Lab); i < 10; i++ {
		in.Lab[fmt.Sprintf("other-%d", i)] = LabHost{Lab: "ab12"}
	}
	err := Preflight(in)
	want := "fs.inotify.max_user_instances is 128; the kubelet, containerd and kube-proxy need at least 320 for the 10 lab hosts sharing this kernel: run `sysctl -w fs.inotify.max_user_instances=320`"
	if err == nil || !strings.Contains(err.Error(), "host worker-1: "+want) {
		t.Fatalf("want %q, got:\n%v", want, err)
	}
	if strings.Contains(err.Error(), "max_user_watches") {
		t.Errorf("watches are high enough:\n%v", err)
	}
}

func TestKubeletConfigFromFacts(t *testing.T) {
	c := loadSpec(t, testSpec)
	in := testInput(t, c, labFacts)
	in.Lab["cp-1"] = LabHost{Lab: "ab12", Host: "cp-1", CgroupRoot: "/lab-ab12-cp-1"}

	lab := configFile(t, render(t, in, bundle.Kubelet, "cp-1"), "kubelet-config.yaml")
	for _, want := range []string{
		"cgroupDriver: \"cgroupfs\"", "cgroupRoot: \"/lab-ab12-cp-1\"", "failCgroupV1: false", "failSwapOn: true",
		"readOnlyPort: 0", "anonymous:\n    enabled: false", "mode: Webhook",
		"clientCAFile: \"/etc/kubernetes/pki/ca.crt\"",
		"tlsCertFile: \"/etc/kubernetes/pki/kubelet/cp-1-serving.crt\"",
		"registerWithTaints:\n  - key: \"node-role.kubernetes.io/control-plane\"\n    effect: \"NoSchedule\"",
		"clusterDNS: [\"10.96.0.10\"]",
	} {
		if !strings.Contains(lab, want) {
			t.Errorf("lab host kubelet config lacks %q:\n%s", want, lab)
		}
	}

	in = testInput(t, c, systemdFacts)
	real := configFile(t, render(t, in, bundle.Kubelet, "worker-1"), "kubelet-config.yaml")
	for _, want := range []string{"cgroupDriver: \"systemd\"", "failSwapOn: false", "swapBehavior: NoSwap",
		"registerWithTaints:\n  - key: \"dedicated\"\n    value: \"batch\"\n    effect: \"NoExecute\""} {
		if !strings.Contains(real, want) {
			t.Errorf("systemd host kubelet config lacks %q:\n%s", want, real)
		}
	}
	for _, never := range []string{"cgroupRoot", "failCgroupV1", "control-plane"} {
		if strings.Contains(real, never) {
			t.Errorf("systemd worker kubelet config has %q:\n%s", never, real)
		}
	}
}

func TestKubeletLabelsAndArgs(t *testing.T) {
	c := loadSpec(t, testSpec)
	in := testInput(t, c, labFacts)
	d := render(t, in, bundle.Kubelet, "worker-1")
	// The kubelet registers with the labels NodeRestriction lets it set;
	// role labels go through SyncNode.
	want := "--node-labels=disk=ssd,topology.kubernetes.io/zone=a"
	if !slices.Contains(d.Unit.Args, want) {
		t.Errorf("kubelet args %q lack %q", d.Unit.Args, want)
	}
	for _, a := range []string{"--hostname-override=worker-1", "--node-ip=10.0.0.12", "--kubeconfig=/etc/kubernetes/kubelet.conf"} {
		if !slices.Contains(d.Unit.Args, a) {
			t.Errorf("kubelet args %q lack %q", d.Unit.Args, a)
		}
	}
	var meta NodeMeta
	if err := json.Unmarshal([]byte(configFile(t, d, "node-meta.json")), &meta); err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{"disk": "ssd", "topology.kubernetes.io/zone": "a", "node-role.kubernetes.io/gpu": "", "node-role.kubernetes.io/worker": ""}
	if diff := cmp.Diff(wantLabels, meta.Labels); diff != "" {
		t.Errorf("node labels (-want +got):\n%s", diff)
	}
	if got := DesiredNodeMeta(mustHost(t, c, "worker-1")).Args(); !slices.Contains(got, "--taint=dedicated=batch:NoExecute") || !slices.Contains(got, "--label=node-role.kubernetes.io/worker=") {
		t.Errorf("node-meta args: %q", got)
	}
	var kc bool
	for _, f := range d.Shared {
		if f.Path == KubeletConfFile && f.Sensitive && f.Mode == 0o600 && string(f.Data) == "kubeconfig:kubelet-worker-1.conf" {
			kc = true
		}
	}
	if !kc {
		t.Errorf("kubelet on worker-1 does not get its own kubeconfig at %s (0600, sensitive): %+v", KubeletConfFile, d.Shared)
	}
}

func mustHost(t *testing.T, c *spec.Cluster, name string) spec.Host {
	t.Helper()
	h, ok := c.Host(name)
	if !ok {
		t.Fatalf("no host %s", name)
	}
	return h
}

func TestKubeletMaySet(t *testing.T) {
	for key, want := range map[string]bool{
		"disk":                               true,
		"example.com/team":                   true,
		"kubernetes.io/hostname":             true,
		"topology.kubernetes.io/zone":        true,
		"node.kubernetes.io/instance-type":   true,
		"kubelet.kubernetes.io/anything":     true,
		"foo.node.kubernetes.io/bar":         true,
		"node-role.kubernetes.io/worker":     false,
		"kubernetes.io/role":                 false,
		"node-restriction.kubernetes.io/pci": false,
		"sub.k8s.io/x":                       false,
	} {
		if got := kubeletMaySet(key); got != want {
			t.Errorf("kubeletMaySet(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestContainerdConfigFromFacts(t *testing.T) {
	c := loadSpec(t, testSpec)
	lab := render(t, testInput(t, c, labFacts), bundle.Containerd, "worker-1")
	toml := configFile(t, lab, "config.toml")
	for _, want := range []string{"restrict_oom_score_adj = true", "SystemdCgroup = false",
		`sandbox = "localhost/clusterctl-pause:3.10"`, `bin_dirs = ["/opt/clusterctl/cni/bin"]`,
		`BinaryName = "/opt/clusterctl/pkg/runc/1.5.2/runc"`, `runtime_path = "/opt/clusterctl/pkg/containerd/2.4.2/containerd-shim-runc-v2"`} {
		if !strings.Contains(toml, want) {
			t.Errorf("containerd config lacks %q:\n%s", want, toml)
		}
	}
	if lab.Unit.OOMScoreAdj != nil {
		t.Errorf("containerd on a host without CAP_SYS_RESOURCE gets oom_score_adj %d", *lab.Unit.OOMScoreAdj)
	}
	real := render(t, testInput(t, c, systemdFacts), bundle.Containerd, "worker-1")
	toml = configFile(t, real, "config.toml")
	if !strings.Contains(toml, "restrict_oom_score_adj = false") || !strings.Contains(toml, "SystemdCgroup = true") {
		t.Errorf("containerd config on a systemd host with every capability:\n%s", toml)
	}
	// The health probe imports both bundled images, each pinned by digest.
	probe := strings.Join(real.Unit.Health.Command, " ")
	for _, img := range []string{"/opt/clusterctl/pkg/pause-image/3.10/pause.tar=", "/opt/clusterctl/pkg/echo-image/v1/echo.tar=", "/opt/clusterctl/pkg/coredns/1.14.6/coredns.tar="} {
		if !strings.Contains(probe, img) {
			t.Errorf("containerd probe %q does not import %s", probe, img)
		}
	}
	var names []string
	for _, a := range real.Artifacts {
		names = append(names, a.Component+"/"+a.Name)
	}
	want := []string{"containerd/containerd", "containerd/containerd-shim-runc-v2", "containerd/ctr", "runc/runc", "pause-image/pause.tar", "echo-image/echo.tar", "coredns/coredns.tar", "metrics-server/metrics-server.tar"}
	if !slices.Equal(names, want) {
		t.Errorf("containerd artifacts %q, want %q", names, want)
	}
}

func TestCNIRoutesAndConfList(t *testing.T) {
	c := loadSpec(t, testSpec)
	in := testInput(t, c, labFacts)
	in.Installed["worker-2"] = installedWithCIDR("10.244.9.0/24")
	d := render(t, in, bundle.CNI, "worker-1")
	var cfg podnet.Config
	if err := json.Unmarshal([]byte(configFile(t, d, "network.json")), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, r := range cfg.Routes {
		routes = append(routes, fmt.Sprintf("%s %s via %s", r.Node, r.Dst, r.Via))
	}
	want := []string{"cp-1 10.244.0.0/24 via 10.0.0.11", "worker-2 10.244.9.0/24 via 10.0.0.13"}
	if !slices.Equal(routes, want) {
		t.Errorf("routes %q, want %q", routes, want)
	}
	if cfg.PodCIDR != netip.MustParsePrefix("10.244.1.0/24") || !slices.Contains(d.Unit.Args, "--pod-cidr=10.244.1.0/24") {
		t.Errorf("worker-1 pod CIDR %s, args %q", cfg.PodCIDR, d.Unit.Args)
	}
	list, err := libcni.ConfListFromBytes([]byte(configFile(t, d, cfg.ConfList)))
	if err != nil {
		t.Fatal(err)
	}
	var bridge struct {
		Type   string `json:"type"`
		IPMasq bool   `json:"ipMasq"`
		IPAM   struct {
			Ranges [][]struct {
				Subnet string `json:"subnet"`
			} `json:"ranges"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(list.Plugins[0].Bytes, &bridge); err != nil {
		t.Fatal(err)
	}
	if bridge.Type != "bridge" || bridge.IPMasq || bridge.IPAM.Ranges[0][0].Subnet != "10.244.1.0/24" {
		t.Errorf("bridge plugin config: %+v", bridge)
	}
	// The recorded allocation round-trips through installed.json.
	if p, ok := recordedPodCIDR(Installed{Components: map[string]InstalledComponent{bundle.CNI: {Generation: Generation{Args: d.Unit.Args}}}}); !ok || p != cfg.PodCIDR {
		t.Errorf("recordedPodCIDR: %s %v", p, ok)
	}
}

func TestNodeAddressMustBeAnIP(t *testing.T) {
	src := strings.Replace(testSpec, `address = "10.0.0.13"`, `address = "worker-2.example.com"`, 1)
	c := loadSpec(t, src)
	in := testInput(t, c, labFacts)
	err := Preflight(in)
	if err == nil || !strings.Contains(err.Error(), "host worker-2: address \"worker-2.example.com\" is not an IP; set internal_address") {
		t.Errorf("Preflight: %v", err)
	}
}

func TestKubeProxyConfig(t *testing.T) {
	c := loadSpec(t, testSpec)
	in := testInput(t, c, labFacts)
	in.Lab["worker-1"] = LabHost{CgroupRoot: "/lab-x"}
	yaml := configFile(t, render(t, in, bundle.KubeProxy, "worker-1"), "kube-proxy-config.yaml")
	for _, want := range []string{"mode: iptables", `clusterCIDR: "10.244.0.0/16"`, `bindAddress: "10.0.0.12"`,
		`hostnameOverride: "worker-1"`, "maxPerCore: 0", `kubeconfig: "/etc/kubernetes/kube-proxy.conf"`} {
		if !strings.Contains(yaml, want) {
			t.Errorf("kube-proxy config lacks %q:\n%s", want, yaml)
		}
	}
	yaml = configFile(t, render(t, in, bundle.KubeProxy, "worker-2"), "kube-proxy-config.yaml")
	if strings.Contains(yaml, "conntrack") {
		t.Errorf("kube-proxy on a real host changes conntrack settings:\n%s", yaml)
	}
}

// Without facts the node configuration cannot be chosen.
func TestNodeComponentsNeedFacts(t *testing.T) {
	c := loadSpec(t, testSpec)
	in := testInput(t, c, labFacts)
	delete(in.Facts, "worker-1")
	h := mustHost(t, c, "worker-1")
	for _, comp := range []string{bundle.Containerd, bundle.Kubelet} {
		if _, err := renderer(comp)(in, h); err == nil || !strings.Contains(err.Error(), "no facts for host worker-1") {
			t.Errorf("%s without facts: %v", comp, err)
		}
	}
}

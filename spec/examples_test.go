package spec

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testEnv is a fixed environment so results do not depend on the machine.
func testEnv() []string { return []string{"HOME=/home/u", "SSH_AUTH_SOCK=/tmp/agent.sock"} }

func loadExample(t *testing.T, name string) *Cluster {
	t.Helper()
	c, diags := Load(filepath.Join("..", "examples", name), VarInputs{Env: testEnv()})
	if len(diags) > 0 {
		t.Fatalf("examples/%s: %v", name, diags)
	}
	return c
}

func TestExamplesValidateCleanly(t *testing.T) {
	for _, name := range []string{"single-node", "lab", "ha"} {
		t.Run(name, func(t *testing.T) { loadExample(t, name) })
	}
}

func TestLabExample(t *testing.T) {
	c := loadExample(t, "lab")
	dir, _ := filepath.Abs("../examples/lab")
	if c.Name() != "lab" || c.KubernetesVersion() != "1.37.2" {
		t.Errorf("name %q version %q", c.Name(), c.KubernetesVersion())
	}
	if c.PodCIDR() != netip.MustParsePrefix("10.244.0.0/16") || c.ServiceCIDR() != netip.MustParsePrefix("10.96.0.0/12") || c.ClusterDNS() != netip.MustParseAddr("10.96.0.10") {
		t.Errorf("networks %s %s %s", c.PodCIDR(), c.ServiceCIDR(), c.ClusterDNS())
	}
	var names []string
	for _, h := range c.Hosts() {
		names = append(names, h.Name+"@"+h.Address)
		want := SSH{
			User: "root", Port: 22, IdentityFiles: []string{filepath.Join(dir, "id_ed25519")}, UseAgent: true,
			KnownHostsFile: filepath.Join(dir, "known_hosts"), HostKeyPolicy: HostKeyStrict, ConnectTimeout: defaultConnectTimeout,
		}
		if diff := cmp.Diff(want, h.SSH); diff != "" {
			t.Errorf("host %s ssh (-want +got):\n%s", h.Name, diff)
		}
	}
	if diff := cmp.Diff([]string{"cp-1@10.200.0.11", "worker-1@10.200.0.12", "worker-2@10.200.0.13"}, names); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	if cp := c.ControlPlaneHosts(); len(cp) != 1 || cp[0].Name != "cp-1" {
		t.Errorf("control planes %v", cp)
	}
	if e := c.EtcdHosts(); len(e) != 1 || e[0].Name != "cp-1" {
		t.Errorf("etcd hosts %v", e)
	}
	api, _ := c.Component("kube-apiserver")
	if api.Version != "1.37.2" || api.VersionSet || api.ExtraArgs["audit-log-maxage"] != "30" {
		t.Errorf("kube-apiserver %+v", api)
	}
	etcd, _ := c.Component("etcd")
	if etcd.Version != c.Release().Etcd {
		t.Errorf("etcd version %q, want %q", etcd.Version, c.Release().Etcd)
	}
	kubelet, _ := c.Component("kubelet")
	if diff := cmp.Diff([]string{"cp-1", "worker-1", "worker-2"}, kubelet.Hosts); diff != "" {
		t.Errorf("kubelet hosts (-want +got):\n%s", diff)
	}
	v, ok := c.Variable("kubernetes_version")
	if !ok || v.Source.Kind != FromDefault || v.DisplayValue() != `"1.37.2"` {
		t.Errorf("variable %+v", v)
	}
}

// corpusInputs turns a corpus case's args and env files into VarInputs.
func corpusInputs(t *testing.T, dir string) VarInputs {
	t.Helper()
	in := VarInputs{Env: testEnv()}
	if b, err := os.ReadFile(filepath.Join(dir, "env")); err == nil {
		in.Env = append(in.Env, strings.Fields(string(b))...)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "args")); err == nil {
		args := strings.Fields(string(b))
		for i := 0; i+1 < len(args); i += 2 {
			switch args[i] {
			case "-var":
				in.Args = append(in.Args, VarArg{Value: args[i+1]})
			case "-var-file":
				in.Args = append(in.Args, VarArg{File: true, Value: args[i+1]})
			default:
				t.Fatalf("%s/args: unknown option %q", dir, args[i])
			}
		}
	}
	return in
}

// TestCorpus checks the corpus at the package level: every invalid case
// fails with its expected first error, every warnings case loads.
// cmd/clusterctl checks the rendered output against the golden files.
func TestCorpus(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/invalid/*")
	if len(dirs) < 25 {
		t.Fatalf("only %d invalid cases", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c, diags := Load(dir, corpusInputs(t, dir))
			want, err := os.ReadFile(filepath.Join(dir, "first_error"))
			if err != nil {
				t.Fatal(err)
			}
			if c != nil || !diags.HasErrors() {
				t.Fatalf("no errors: %v", diags)
			}
			if got, want := firstError(diags), strings.SplitN(string(want), "\n", 2)[0]; got != want {
				t.Errorf("first error %q, want %q", got, want)
			}
		})
	}
	warn, _ := filepath.Glob("testdata/warnings/*")
	for _, dir := range warn {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c, diags := Load(dir, corpusInputs(t, dir))
			if c == nil || diags.HasErrors() || len(diags) == 0 {
				t.Errorf("want warnings only: %v", diags)
			}
		})
	}
}

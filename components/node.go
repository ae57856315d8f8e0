package components

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
)

// Node-side locations and ports.
const (
	ContainerdSocket = "/run/containerd/containerd.sock"
	ContainerdRoot   = "/var/lib/containerd"
	ContainerdState  = "/run/containerd"
	KubeletDir       = "/var/lib/kubelet"
	KubeletConfFile  = "/etc/kubernetes/kubelet.conf"
	CNIConfDir       = "/etc/cni/net.d"
	CNIConfName      = "10-clusterctl.conflist"
	// CNIBinDir is the stable folder containerd searches for CNI plugins;
	// the cni component links it to the versioned package folder.
	CNIBinDir = "/opt/clusterctl/cni/bin"

	KubeletHealthzPort   = 10248
	KubeProxyHealthzPort = 10256
	// CNIHealthPort is where the pod-network keeper answers /healthz.
	CNIHealthPort = 10261

	// NodeCIDRBits is the size of each node's pod CIDR: 254 pods a node.
	NodeCIDRBits = 24
)

// Node roles and the taint that keeps ordinary pods off control planes.
const (
	RoleLabelPrefix   = "node-role.kubernetes.io/"
	ControlPlaneTaint = "node-role.kubernetes.io/control-plane"
)

// facts returns a host's facts. Node components are configured from them
// (cgroup version and driver, swap, capabilities), so they must be known.
func (in Input) facts(host string) (provision.Facts, error) {
	f, ok := in.Facts[host]
	if !ok {
		return provision.Facts{}, fmt.Errorf("no facts for host %s (its cgroup version, init system and capabilities decide the node configuration)", host)
	}
	return f, nil
}

// systemdCgroups reports whether the node uses the systemd cgroup driver:
// where systemd is PID 1 (the agent then runs as a systemd service),
// cgroupfs elsewhere. containerd and the kubelet must agree.
func systemdCgroups(f provision.Facts) bool { return f.SystemdPID1 }

// nodeAddress is the IP a node advertises and other nodes route its pod
// CIDR through.
func nodeAddress(h spec.Host) (netip.Addr, error) {
	a := h.NodeAddress()
	if !a.IsValid() {
		return netip.Addr{}, fmt.Errorf("host %s: address %q is not an IP; set internal_address to the IP other nodes reach it on (pod routes go through it)", h.Name, h.Address)
	}
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("host %s: node address %s is not IPv4; the pod network is IPv4 only", h.Name, a)
	}
	return a, nil
}

// recordedPodCIDR is the pod CIDR a host's installed cni component was
// given (its --pod-cidr argument in installed.json).
func recordedPodCIDR(inst Installed) (netip.Prefix, bool) {
	c, ok := inst.Components[bundle.CNI]
	if !ok {
		return netip.Prefix{}, false
	}
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--pod-cidr="); ok {
			p, err := netip.ParsePrefix(v)
			return p, err == nil
		}
	}
	return netip.Prefix{}, false
}

// PodCIDRs gives every node (host running the kubelet) its own /24 of the
// cluster's pod CIDR. A node keeps the range its hosts' installed.json
// records, so adding or removing nodes never moves another node's pods;
// new nodes take the lowest free ranges, in spec order. clusterctl
// allocates instead of the controller-manager so that each node's network
// configuration and the routes on every other node are known when the
// plan is made, and keep working while the API server is down.
func (in Input) PodCIDRs() (map[string]netip.Prefix, error) {
	cluster := in.Cluster.PodCIDR().Masked()
	if !cluster.Addr().Is4() {
		return nil, fmt.Errorf("pod_cidr %s: the pod network is IPv4 only", cluster)
	}
	if cluster.Bits() > NodeCIDRBits {
		return nil, fmt.Errorf("pod_cidr %s is too small: each node gets a /%d", cluster, NodeCIDRBits)
	}
	nodes := in.Cluster.HostsRunning(bundle.Kubelet)
	out := map[string]netip.Prefix{}
	used := map[netip.Prefix]string{}
	for _, h := range nodes {
		p, ok := recordedPodCIDR(in.Installed[h.Name])
		if !ok || p.Bits() != NodeCIDRBits || !cluster.Contains(p.Addr()) || p.Masked() != p {
			continue
		}
		if _, taken := used[p]; taken {
			continue // two hosts claim it: the later one in spec order moves
		}
		out[h.Name], used[p] = p, h.Name
	}
	next := cluster.Addr()
	step := uint64(1) << (32 - NodeCIDRBits)
	for _, h := range nodes {
		if _, ok := out[h.Name]; ok {
			continue
		}
		for {
			p := netip.PrefixFrom(next, NodeCIDRBits)
			if !cluster.Contains(next) {
				return nil, fmt.Errorf("host %s: pod_cidr %s has no free /%d left for another node", h.Name, cluster, NodeCIDRBits)
			}
			next = addUint(next, step)
			if _, taken := used[p]; !taken {
				out[h.Name], used[p] = p, h.Name
				break
			}
		}
	}
	return out, nil
}

// addUint adds n to an IPv4 address, saturating at the top.
func addUint(a netip.Addr, n uint64) netip.Addr {
	b := a.As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	v += n
	if v > 0xffffffff {
		return netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// nodeLabels are the labels a node should carry: a role label per role
// (control-plane, worker) and the spec's labels.
func nodeLabels(h spec.Host) map[string]string {
	out := map[string]string{}
	for _, r := range h.Roles {
		if r == spec.RoleControlPlane || r == spec.RoleWorker {
			out[RoleLabelPrefix+r] = ""
		}
	}
	for k, v := range h.Labels {
		out[k] = v
	}
	return out
}

// nodeTaints are the taints a node registers with: the spec's, plus
// NoSchedule on a control plane that is not also a worker.
func nodeTaints(h spec.Host) []spec.Taint {
	ts := slices.Clone(h.Taints)
	if h.HasRole(spec.RoleControlPlane) && !h.HasRole(spec.RoleWorker) {
		has := slices.ContainsFunc(ts, func(t spec.Taint) bool { return t.Key == ControlPlaneTaint && t.Effect == "NoSchedule" })
		if !has {
			ts = append(ts, spec.Taint{Key: ControlPlaneTaint, Effect: "NoSchedule"})
		}
	}
	return ts
}

// kubeletMaySet reports whether the kubelet may set a label on its own
// Node (NodeRestriction): labels outside the kubernetes.io and k8s.io
// namespaces, and a few well-known ones inside them.
func kubeletMaySet(key string) bool {
	prefix, _, found := strings.Cut(key, "/")
	if !found {
		return true
	}
	switch key {
	case "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
		"beta.kubernetes.io/os", "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type",
		"node.kubernetes.io/instance-type",
		"topology.kubernetes.io/region", "topology.kubernetes.io/zone",
		"failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone":
		return true
	}
	for _, ns := range []string{"kubelet.kubernetes.io", "node.kubernetes.io"} {
		if prefix == ns || strings.HasSuffix(prefix, "."+ns) {
			return true
		}
	}
	for _, ns := range []string{"kubernetes.io", "k8s.io"} {
		if prefix == ns || strings.HasSuffix(prefix, "."+ns) {
			return false
		}
	}
	return true
}

// splitLabels separates the labels the kubelet registers the node with
// from those only an administrator may set.
func splitLabels(labels map[string]string) (kubelet, admin map[string]string) {
	kubelet, admin = map[string]string{}, map[string]string{}
	for k, v := range labels {
		if kubeletMaySet(k) {
			kubelet[k] = v
		} else {
			admin[k] = v
		}
	}
	return kubelet, admin
}

func joinLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// hostTools lists the programs each node component runs on the host.
// Routes are set through netlink and conntrack entries by kube-proxy
// itself, so neither `ip` nor `conntrack` is needed.
var hostTools = map[string][]string{
	bundle.Kubelet:   {"mount", "umount"},
	bundle.KubeProxy: {"iptables"},
	bundle.CNI:       {"iptables"},
}

// Preflight checks, before anything is changed, that every host has what
// the node components need: the tools they run, a mounted cgroup
// hierarchy, an IPv4 node address. Every problem of every host is
// reported, each naming its host.
func Preflight(in Input) error {
	var errs []error
	for _, h := range in.Cluster.Hosts() {
		var needs []string // components of this host that need something
		missing := map[string][]string{}
		for _, comp := range []string{bundle.Containerd, bundle.CNI, bundle.Kubelet, bundle.KubeProxy} {
			if !slices.ContainsFunc(in.Cluster.HostsRunning(comp), func(o spec.Host) bool { return o.Name == h.Name }) {
				continue
			}
			needs = append(needs, comp)
			f, ok := in.Facts[h.Name]
			if !ok {
				continue
			}
			for _, t := range hostTools[comp] {
				if !f.HasTool(t) {
					missing[t] = append(missing[t], comp)
				}
			}
		}
		if len(needs) == 0 {
			continue
		}
		if len(missing) > 0 {
			tools := make([]string, 0, len(missing))
			for t := range missing {
				tools = append(tools, t)
			}
			sort.Strings(tools)
			var parts []string
			for _, t := range tools {
				parts = append(parts, fmt.Sprintf("%s (for %s)", t, strings.Join(missing[t], ", ")))
			}
			errs = append(errs, fmt.Errorf("host %s: missing tools: %s; install them (Debian: apt-get install iptables mount) and plan again", h.Name, strings.Join(parts, ", ")))
		}
		if f, ok := in.Facts[h.Name]; ok && (slices.Contains(needs, bundle.Kubelet) || slices.Contains(needs, bundle.Containerd)) {
			errs = append(errs, in.inotifyLimits(h.Name, f)...)
		}
		if f, ok := in.Facts[h.Name]; ok && f.CgroupVersion == 0 {
			errs = append(errs, fmt.Errorf("host %s: no cgroup hierarchy is mounted at /sys/fs/cgroup; containerd and the kubelet need one", h.Name))
		}
		if slices.Contains(needs, bundle.CNI) || slices.Contains(needs, bundle.Kubelet) {
			if _, err := nodeAddress(h); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := in.PodCIDRs(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("preflight: the hosts are not ready for the node components; nothing was changed:\n%w", errors.Join(errs...))
	}
	return nil
}

// The inotify a node needs: measured on the lab, a control plane uses 22
// instances (kubelet 6, containerd 2, kube-proxy 1, the control plane's
// 13), a worker 9; the floors leave room for more. Lab hosts share one
// kernel and one user (root), so their needs add up: ten lab hosts at the
// default 128 instances make every kubelet crash-loop with "too many open
// files".
const (
	inotifyInstancesPerHost = 32
	inotifyWatchesPerHost   = 8192
)

// inotifyLimits names a host whose kernel's inotify limits are too low for
// its node components (and, for lab hosts, for every lab host of the spec
// sharing that kernel).
func (in Input) inotifyLimits(host string, f provision.Facts) []error {
	sharing, why := 1, ""
	if _, lab := in.Lab[host]; lab {
		sharing = len(in.Lab)
		why = fmt.Sprintf(" for the %d lab hosts sharing this kernel", sharing)
	}
	var errs []error
	check := func(name string, have, perHost int) {
		want := perHost * sharing
		if have > 0 && have < want {
			errs = append(errs, fmt.Errorf("host %s: fs.inotify.%s is %d; the kubelet, containerd and kube-proxy need at least %d%s: run `sysctl -w fs.inotify.%s=%d` on it (and keep it in /etc/sysctl.d; `clusterctl lab up` raises it for labs)",
				host, name, have, want, why, name, max(want, 2*have)))
		}
	}
	check("max_user_instances", f.InotifyInstances, inotifyInstancesPerHost)
	check("max_user_watches", f.InotifyWatches, inotifyWatchesPerHost)
	return errs
}

// NodeMeta is what clusterctl keeps on a Node object: the labels and
// taints the spec gives the host. The kubelet registers a new node with
// the labels it may set and the taints; the rest (role labels, other
// kubernetes.io labels) and every later change need an administrator, so
// apply patches them after the kubelet's health gate (SyncNode).
type NodeMeta struct {
	Labels map[string]string `json:"labels"`
	Taints []spec.Taint      `json:"taints"`
}

// DesiredNodeMeta is the node metadata the spec wants for a host.
func DesiredNodeMeta(h spec.Host) NodeMeta {
	return NodeMeta{Labels: nodeLabels(h), Taints: nodeTaints(h)}
}

// Args renders the metadata as `clusterctl agent node-meta` flags.
func (m NodeMeta) Args() []string {
	keys := make([]string, 0, len(m.Labels))
	for k := range m.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, "--label="+k+"="+m.Labels[k])
	}
	for _, t := range m.Taints {
		out = append(out, "--taint="+t.String())
	}
	return out
}

// marshal renders the metadata as the kubelet generation's node-meta.json,
// so a changed label or taint shows in the plan as a kubelet change.
func (m NodeMeta) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

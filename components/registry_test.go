package components

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/spec"
)

// renderer is a component's Render from the registry.
func renderer(name string) func(Input, spec.Host) (Desired, error) {
	s, _ := Lookup(name)
	return s.Render
}

// A destroy of every component on a control-plane host, ordered by the
// registry's rules reversed: node agents first (kube-proxy before the
// kubelet), the control plane after them, etcd after the API server, the
// runtime after the kubelet, and the agent last; a component this version
// does not know goes before the agent.
func TestRegistryDestroyOrder(t *testing.T) {
	var cs []plan.Change
	for _, n := range append(Names(), "kube-dns") {
		cs = append(cs, plan.Change{Address: plan.Address(Kind, n, "cp-1"), Kind: Kind, Name: n, Host: "cp-1", Action: plan.Delete})
	}
	steps, err := plan.Graph(cs, Order(1, "kube-dns"), Names(), false)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, s := range steps {
		pos[s.Component] = i
	}
	before := [][2]string{
		{"kube-proxy", "kubelet"}, {"kubelet", "kube-controller-manager"}, {"kubelet", "kube-scheduler"},
		{"kube-controller-manager", "kube-apiserver"}, {"kube-apiserver", "etcd"},
		{"kubelet", "containerd"}, {"kubelet", "cni"}, {"kube-dns", "agent"},
	}
	for _, b := range before {
		if pos[b[0]] >= pos[b[1]] {
			t.Errorf("%s is removed at step %d, after %s (step %d)", b[0], pos[b[0]], b[1], pos[b[1]])
		}
	}
	if last := steps[len(steps)-1].Component; last != AgentComponent {
		t.Errorf("last step removes %s, want the agent", last)
	}
}

func TestRegistry(t *testing.T) {
	if d := cmp.Diff([]string{"agent", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "cni", "kubelet", "kube-proxy", "coredns", "metrics-server"}, Names()); d != "" {
		t.Errorf("names (-want +got):\n%s", d)
	}
	for _, s := range Registry() {
		if (s.Render == nil) != (s.Name == AgentComponent) {
			t.Errorf("%s: only the agent has no renderer", s.Name)
		}
	}
	if d := cmp.Diff([]string{EtcdDataDir, ContainerdRoot}, KeptData([]string{"agent", "etcd", "containerd", "kubelet"})); d != "" {
		t.Errorf("kept data (-want +got):\n%s", d)
	}
	need := RemoveTools([]string{"kubelet", "cni", "etcd"})
	if !slices.Equal(need["iptables"], []string{"kubelet", "cni"}) || !slices.Equal(need["ip"], []string{"cni"}) {
		t.Errorf("remove tools: %v", need)
	}
}

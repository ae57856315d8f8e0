package plan

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func deps(steps []Step) map[string][]string {
	got := map[string][]string{}
	for _, s := range steps {
		got[s.ID] = s.DependsOn
	}
	return got
}

// A destroy is the rollout with its edges reversed: the kubelet before the
// container runtime on its host, the API server before etcd, the control
// plane after every kubelet.
func TestGraphDeletesReverseTheRollout(t *testing.T) {
	order := testOrder()
	var cs []Change
	for _, n := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "containerd", "kubelet"} {
		cs = append(cs, change(n, "cp-1", Delete))
	}
	cs = append(cs, change("containerd", "w-1", Delete), change("kubelet", "w-1", Delete))
	steps, err := Graph(cs, order, testComponents, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"kubelet:delete":                 nil,
		"containerd:delete":              {"kubelet:delete"},
		"kube-controller-manager:delete": {"kubelet:delete"},
		"kube-apiserver:delete":          {"kube-controller-manager:delete", "kubelet:delete"},
		"etcd:delete":                    {"kube-apiserver:delete"},
	}
	if d := cmp.Diff(want, deps(steps)); d != "" {
		t.Fatalf("steps (-want +got):\n%s", d)
	}
	if steps[0].ID != "kubelet:delete" {
		t.Errorf("first step %s, want kubelet:delete", steps[0].ID)
	}
}

// A host leaving while another joins: the leaving host's components go in
// reverse, the joining host's in rollout order, with no cycle between them.
func TestGraphCreatesAndDeletesTogether(t *testing.T) {
	order := testOrder()
	order["agent"] = Rule{}
	for n, r := range order {
		if n != "agent" {
			r.AfterOnHost = append(r.AfterOnHost, "agent")
			order[n] = r
		}
	}
	names := append([]string{"agent"}, testComponents...)
	cs := []Change{
		change("agent", "w-2", Create), change("containerd", "w-2", Create), change("kubelet", "w-2", Create),
		change("agent", "w-1", Delete), change("containerd", "w-1", Delete), change("kubelet", "w-1", Delete),
		change("kube-apiserver", "cp-1", Update),
	}
	steps, err := Graph(cs, order, names, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"agent:create":        nil,
		"agent:delete":        {"agent:create", "containerd:delete", "kubelet:delete"},
		"kube-apiserver:cp-1": nil,
		"containerd:create":   {"agent:create"},
		"containerd:delete":   {"containerd:create", "kubelet:delete"},
		"kubelet:create":      {"kube-apiserver:cp-1", "containerd:create", "agent:create"},
		"kubelet:delete":      {"kubelet:create"},
	}
	if d := cmp.Diff(want, deps(steps)); d != "" {
		t.Fatalf("steps (-want +got):\n%s", d)
	}
}

// A rollback undoes an upgrade from its end: one host at a time, hosts in
// reverse order, kubelets before the API servers.
func TestGraphReverse(t *testing.T) {
	cs := []Change{
		change("kube-apiserver", "cp-1", Upgrade), change("kube-apiserver", "cp-2", Upgrade),
		change("kubelet", "w-1", Upgrade), change("kubelet", "w-2", Upgrade),
	}
	steps, err := Graph(cs, testOrder(), testComponents, true)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range steps {
		ids = append(ids, s.ID)
	}
	if d := cmp.Diff([]string{"kubelet:w-2", "kubelet:w-1", "kube-apiserver:cp-2", "kube-apiserver:cp-1"}, ids); d != "" {
		t.Fatalf("order (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"kubelet:w-2", "kubelet:w-1"}, steps[2].DependsOn); d != "" {
		t.Errorf("the first API server waits for every kubelet (-want +got):\n%s", d)
	}
}

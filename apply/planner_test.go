package apply

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/state"
)

const testSpec = `
cluster "demo" {
  kubernetes_version = "1.37.2"
}
ssh {
  user             = "root"
  identity_files   = ["/dev/null"]
  known_hosts_file = "/dev/null"
}
host "cp-1" {
  address = "10.0.0.11"
  roles   = ["control-plane", "etcd"]
}
host "worker-1" {
  address = "10.0.0.12"
  roles   = ["worker"]
}
host "worker-2" {
  address = "10.0.0.13"
  roles   = ["worker"]
}
`

func testSession(t *testing.T) *Session {
	t.Helper()
	c, diags := spec.Parse(map[string][]byte{"cluster.hcl": []byte(testSpec)}, spec.VarInputs{Env: []string{}})
	if diags.HasErrors() {
		t.Fatalf("spec: %v", diags)
	}
	return &Session{Cluster: c, Store: state.NewFileStore(t.TempDir())}
}

func gen(n int, version string) components.Generation {
	return components.Generation{Number: n, Version: version}
}

// upgraded is a cluster whose kubelets and API server went from 1.36.3 to
// 1.37.2 (generation 2), with worker-2's kubelet never upgraded.
func upgraded() World {
	up := components.InstalledComponent{Generation: gen(2, "1.37.2"), Previous: []components.Generation{gen(1, "1.36.3")}}
	first := components.InstalledComponent{Generation: gen(1, "1.36.3")}
	return World{Installed: map[string]components.Installed{
		"cp-1":     {Components: map[string]components.InstalledComponent{"kube-apiserver": up, "kubelet": up}},
		"worker-1": {Components: map[string]components.InstalledComponent{"kubelet": up}},
		"worker-2": {Components: map[string]components.InstalledComponent{"kubelet": first}},
	}}
}

func TestPlanRollback(t *testing.T) {
	s := testSession(t)
	c := &Computed{World: upgraded()}
	changes, err := s.planRollback(c, Options{Mode: plan.ModeRollback, Components: []string{"kubelet"}, Hosts: []string{"cp-1", "worker-1"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range changes {
		var g string
		for _, a := range ch.Attrs {
			if a.Name == "generation" {
				g = a.Before + "->" + a.After
			}
		}
		got = append(got, ch.Host+" "+ch.Action.String()+" "+ch.Before+"->"+ch.After+" gen "+g)
	}
	want := []string{"cp-1 upgrade 1.37.2->1.36.3 gen 2->1", "worker-1 upgrade 1.37.2->1.36.3 gen 2->1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("changes (-want +got):\n%s", d)
	}
	steps, err := plan.Graph(changes, components.Order(1), components.Names(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 2 || steps[0].Hosts[0] != "worker-1" || steps[1].DependsOn[0] != steps[0].ID {
		t.Errorf("a rollback goes one host at a time, in reverse: %+v", steps)
	}

	// worker-2 has nothing to go back to.
	_, err = s.planRollback(c, Options{Mode: plan.ModeRollback, Components: []string{"kubelet"}})
	var np *components.ErrNoPrevious
	if !errors.As(err, &np) || np.Host != "worker-2" {
		t.Errorf("rollback of every kubelet: %v, want no previous generation on worker-2", err)
	}
	// The API server back to 1.36 while kubelets run 1.37 breaks the skew rules.
	_, err = s.planRollback(c, Options{Mode: plan.ModeRollback, Components: []string{"kube-apiserver"}})
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "kubelet") {
		t.Errorf("rollback of the API server before the kubelets: %v, want a refusal naming the kubelet", err)
	}
	if _, err := s.planRollback(c, Options{Mode: plan.ModeRollback, Components: []string{"kubelet"}, Hosts: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), `no host "nope"`) {
		t.Errorf("unknown host: %v", err)
	}
}

func TestStale(t *testing.T) {
	fp := plan.Fingerprint{Files: map[string]string{"cluster.hcl": "sha256:a"}, Binary: "sha256:b", Hosts: map[string]string{"cp-1": "h"}}
	ch := plan.Change{Address: `component.kubelet["cp-1"]`, Kind: components.Kind, Name: "kubelet", Host: "cp-1", Action: plan.Upgrade}
	saved := &plan.Plan{Mode: plan.ModeApply, Fingerprint: fp, Changes: []plan.Change{ch}}
	now := &plan.Plan{Mode: plan.ModeApply, Fingerprint: fp, Changes: []plan.Change{ch}}
	if why := Stale(saved, now); why != nil {
		t.Fatalf("same plan is stale: %v", why)
	}
	rebuilt := *now
	rebuilt.Fingerprint.Binary = "sha256:c"
	if why := Stale(saved, &rebuilt); len(why) != 1 || !strings.Contains(why[0], "the clusterctl binary changed") {
		t.Errorf("a rebuilt clusterctl: %v", why)
	}
	other := *now
	other.Changes = []plan.Change{{Address: `component.kubelet["cp-1"]`, Kind: components.Kind, Action: plan.Update}}
	if why := Stale(saved, &other); len(why) != 1 || !strings.Contains(why[0], "would now update, not upgrade") {
		t.Errorf("other steps from the same world: %v", why)
	}
	destroy := *now
	destroy.Mode = plan.ModeDestroy
	if why := Stale(saved, &destroy); len(why) != 1 {
		t.Errorf("another mode: %v", why)
	}
}

func TestSavedOptions(t *testing.T) {
	p := &plan.Plan{Mode: plan.ModeRollback, Changes: []plan.Change{
		{Name: "kubelet", Host: "worker-1"}, {Name: "kubelet", Host: "cp-1"},
	}}
	want := Options{Mode: plan.ModeRollback, Components: []string{"kubelet"}, Hosts: []string{"cp-1", "worker-1"}}
	if d := cmp.Diff(want, SavedOptions(p)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if d := cmp.Diff(Options{Mode: plan.ModeDestroy, KeepData: true}, SavedOptions(&plan.Plan{Mode: plan.ModeDestroy, KeepData: true})); d != "" {
		t.Errorf("destroy (-want +got):\n%s", d)
	}
}

// A host the state records and the spec no longer names is reached with
// the spec's ssh block.
func TestRetiredHosts(t *testing.T) {
	s := testSession(t)
	st := state.New("demo")
	st.SetComponent("worker-1", "10.0.0.12", "kubelet", state.ComponentState{Version: "1.37.2"})
	st.SetComponent("worker-9", "10.0.0.99", "kubelet", state.ComponentState{Version: "1.37.2"})
	if err := s.Store.Write(st); err != nil {
		t.Fatal(err)
	}
	got, err := s.retiredHosts()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "worker-9" || got[0].Address != "10.0.0.99" || got[0].User != "root" || got[0].SSH.KnownHostsFile != "/dev/null" {
		t.Errorf("retired hosts: %+v", got)
	}
}

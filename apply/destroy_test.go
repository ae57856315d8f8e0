package apply

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/state"
)

func installed(names ...string) components.Installed {
	in := components.Installed{Components: map[string]components.InstalledComponent{}}
	for _, n := range names {
		in.Components[n] = components.InstalledComponent{Generation: components.Generation{Number: 1, Version: "v-" + n}}
	}
	return in
}

func itemNames(t HostTeardown) []string {
	var out []string
	for _, c := range t.Components {
		out = append(out, c.Name)
	}
	return out
}

func TestTeardown(t *testing.T) {
	cp := installed("agent", "etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "containerd", "cni", "kubelet", "kube-proxy")
	tests := []struct {
		name  string
		inst  components.Installed
		probe components.HostProbe
		keep  bool
		want  []string
		kept  []string
	}{
		{name: "control plane in destroy order", inst: cp, probe: components.HostProbe{AgentUp: true},
			want: []string{"kube-proxy", "kubelet", "kube-controller-manager", "kube-scheduler", "kube-apiserver", "etcd", "cni", "containerd", "agent"}},
		{name: "keep data", inst: cp, keep: true,
			want: []string{"kube-proxy", "kubelet", "kube-controller-manager", "kube-scheduler", "kube-apiserver", "etcd", "cni", "containerd", "agent"},
			kept: []string{"/var/lib/etcd", "/var/lib/containerd"}},
		{name: "a component only the agent runs, and one this version does not know",
			inst: installed("agent", "kubelet"), probe: components.HostProbe{AgentUp: true, Running: []string{"kubelet", "containerd", "kube-dns"}},
			want: []string{"kube-dns", "kubelet", "containerd", "agent"}},
		{name: "nothing recorded but clusterctl's files", inst: installed(), probe: components.HostProbe{Leftovers: []string{"/opt/clusterctl"}},
			want: []string{"agent"}},
		{name: "nothing at all", inst: installed(), want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := teardown("h", tc.inst, tc.probe, components.UninstallOptions{KeepData: tc.keep})
			if d := cmp.Diff(tc.want, itemNames(got)); d != "" {
				t.Errorf("components (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.kept, got.Kept); d != "" {
				t.Errorf("kept (-want +got):\n%s", d)
			}
			if got.AgentUp != tc.probe.AgentUp {
				t.Errorf("AgentUp %v", got.AgentUp)
			}
		})
	}
}

func testPlan() *DestroyPlan {
	o := components.UninstallOptions{}
	dp := &DestroyPlan{Hosts: []HostTeardown{
		teardown("cp-1", installed("agent", "etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "containerd", "cni", "kubelet", "kube-proxy"), components.HostProbe{}, o),
		teardown("worker-1", installed("agent", "containerd", "cni", "kubelet", "kube-proxy"), components.HostProbe{}, o),
		teardown("worker-2", installed("agent", "containerd", "cni", "kubelet", "kube-proxy"), components.HostProbe{}, o),
	}}
	dp.Steps = destroySteps(dp.Hosts)
	return dp
}

func TestDestroyOrder(t *testing.T) {
	dp := testPlan()
	if dp.Count() != 19 {
		t.Errorf("Count %d, want 19", dp.Count())
	}
	var got []string
	for _, st := range dp.Order() {
		got = append(got, strings.Join(st.Components, ",")+" on "+strings.Join(st.Hosts, ","))
	}
	want := []string{
		"kube-proxy,kubelet on cp-1,worker-1,worker-2",
		"kube-controller-manager,kube-scheduler on cp-1",
		"kube-apiserver on cp-1",
		"etcd on cp-1",
		"cni,containerd on cp-1,worker-1,worker-2",
		"agent on cp-1,worker-1,worker-2",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("order (-want +got):\n%s", d)
	}
}

// TestDestroyWalk runs the destroy's steps through the walker: every step
// starts only after the whole previous stage and after its host's earlier
// component of the stage, and a failure skips every later stage on every
// host.
func TestDestroyWalk(t *testing.T) {
	dp := testPlan()
	rank := func(id string) (stage int, host, comp string) {
		for _, st := range dp.Steps {
			if st.ID == id {
				return destroyStage(st.Component), st.Hosts[0], st.Component
			}
		}
		t.Fatalf("no step %s", id)
		return
	}
	run := func(fail string) (Result, []string) {
		var mu sync.Mutex
		var finished []string
		w := &Walker{MaxSteps: 4}
		res := w.Walk(context.Background(), dp.Steps, func(ctx context.Context, st plan.Step) error {
			mu.Lock()
			defer mu.Unlock()
			s, h, c := rank(st.ID)
			for _, f := range finished {
				fs, fh, fc := rank(f)
				if fs > s || (fs == s && fh == h && destroyRank(fc) > destroyRank(c)) {
					t.Errorf("%s ran after %s", st.ID, f)
				}
			}
			// Everything of earlier stages has finished.
			for _, other := range dp.Steps {
				so, _, _ := rank(other.ID)
				if so < s && !slices.Contains(finished, other.ID) {
					t.Errorf("%s started before %s finished", st.ID, other.ID)
				}
			}
			finished = append(finished, st.ID)
			if st.ID == fail {
				return errors.New("injected")
			}
			return nil
		}, nil)
		return res, finished
	}
	res, finished := run("")
	if res.Err() != nil || len(finished) != len(dp.Steps) {
		t.Fatalf("walk: %v, %d of %d steps", res.Err(), len(finished), len(dp.Steps))
	}

	res, finished = run(plan.Address(components.Kind, "kubelet", "worker-2"))
	var skipped []string
	for _, o := range res.Outcomes {
		if o.Status == state.StepSkipped {
			skipped = append(skipped, o.Step.ID)
		}
	}
	if slices.Contains(finished, plan.Address(components.Kind, "etcd", "cp-1")) || len(skipped) != len(dp.Steps)-6 {
		t.Errorf("after a failed kubelet: ran %v, skipped %d (want every step after the first stage)", finished, len(skipped))
	}
}

func TestDestroyTools(t *testing.T) {
	td := teardown("w", installed("agent", "cni", "kubelet"), components.HostProbe{}, components.UninstallOptions{})
	errs := destroyTools(td, func(tool string) bool { return tool == "iptables" })
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "host w: ip is missing") {
		t.Errorf("errors %v, want ip missing on w", errs)
	}
	if errs := destroyTools(td, func(string) bool { return true }); len(errs) != 0 {
		t.Errorf("every tool present: %v", errs)
	}
	if errs := destroyTools(teardown("cp", installed("agent", "etcd"), components.HostProbe{}, components.UninstallOptions{}), func(string) bool { return false }); len(errs) != 0 {
		t.Errorf("etcd needs no tool: %v", errs)
	}
}

func TestRetireState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".clusterctl")
	store := state.NewFileStore(dir)
	if err := store.Write(state.New("c")); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var dests []string
	for range 2 {
		lock, err := store.Lock("destroy")
		if err != nil {
			t.Fatal(err)
		}
		dest, err := RetireState(store, lock.ID, now)
		if err != nil {
			t.Fatal(err)
		}
		dests = append(dests, filepath.Base(dest))
		if _, err := os.Stat(filepath.Join(dest, "state.json")); err != nil && len(dests) == 1 {
			t.Errorf("the state did not move: %v", err)
		}
		if _, held, _ := state.NewFileStore(dest).ReadLock(); held {
			t.Errorf("the lock is still held in %s", dest)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists", dir)
		}
	}
	if d := cmp.Diff([]string{".clusterctl.destroyed-20300102T030405Z", ".clusterctl.destroyed-20300102T030405Z-2"}, dests); d != "" {
		t.Errorf("folders (-want +got):\n%s", d)
	}
	if dest, err := RetireState(store, "x", now); dest != "" || err != nil {
		t.Errorf("no state folder: %q %v", dest, err)
	}
}

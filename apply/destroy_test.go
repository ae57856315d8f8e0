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

func names(cs []plan.Change) []string {
	var out []string
	for _, c := range cs {
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
		kept  string
	}{
		{name: "control plane", inst: cp, probe: components.HostProbe{AgentUp: true},
			want: []string{"agent", "cni", "containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubelet"}},
		{name: "keep data", inst: cp, keep: true,
			want: []string{"agent", "cni", "containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubelet"},
			kept: "/var/lib/etcd, /var/lib/containerd"},
		{name: "a component only the agent runs, and one this version does not know",
			inst: installed("agent", "kubelet"), probe: components.HostProbe{AgentUp: true, Running: []string{"kubelet", "containerd", "kube-dns"}},
			want: []string{"agent", "kubelet", "containerd", "kube-dns"}},
		{name: "nothing recorded but clusterctl's files", inst: installed(), probe: components.HostProbe{Leftovers: []string{"/opt/clusterctl"}},
			want: []string{"agent"}},
		{name: "nothing at all", inst: installed(), want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := components.Teardown("h", tc.inst, tc.probe, tc.keep)
			if d := cmp.Diff(tc.want, names(got)); d != "" {
				t.Errorf("components (-want +got):\n%s", d)
			}
			kept := ""
			for _, c := range got {
				if c.Action != plan.Delete || c.Host != "h" {
					t.Errorf("%s: %s on %s, want a delete on h", c.Address, c.Action, c.Host)
				}
				for _, a := range c.Attrs {
					if a.Name == plan.AttrKept {
						kept = a.Before
					}
				}
			}
			if kept != tc.kept {
				t.Errorf("kept %q, want %q", kept, tc.kept)
			}
		})
	}
}

func destroySteps(t *testing.T) []plan.Step {
	var cs []plan.Change
	cs = append(cs, components.Teardown("cp-1", installed("agent", "etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "containerd", "cni", "kubelet", "kube-proxy"), components.HostProbe{}, false)...)
	cs = append(cs, components.Teardown("worker-1", installed("agent", "containerd", "cni", "kubelet", "kube-proxy"), components.HostProbe{}, false)...)
	cs = append(cs, components.Teardown("worker-2", installed("agent", "containerd", "cni", "kubelet", "kube-proxy"), components.HostProbe{}, false)...)
	steps, err := plan.Graph(cs, components.Order(1), components.Names(), false)
	if err != nil {
		t.Fatal(err)
	}
	return steps
}

// TestDestroyWalk runs a destroy's steps through the walker: no component
// goes before what the rollout started after it has gone, and a failed
// kubelet skips the control plane, etcd, the runtime and the agents, while
// what does not depend on it still runs.
func TestDestroyWalk(t *testing.T) {
	steps := destroySteps(t)
	run := func(fail string) (Result, []string) {
		var mu sync.Mutex
		var finished []string
		w := &Walker{MaxSteps: 4}
		res := w.Walk(context.Background(), steps, func(ctx context.Context, st plan.Step) error {
			mu.Lock()
			defer mu.Unlock()
			finished = append(finished, st.Component)
			if st.Component == fail {
				return errors.New("injected")
			}
			return nil
		}, nil)
		return res, finished
	}
	res, finished := run("")
	if res.Err() != nil || len(finished) != len(steps) {
		t.Fatalf("walk: %v, %d of %d steps", res.Err(), len(finished), len(steps))
	}
	pos := func(c string) int { return slices.Index(finished, c) }
	for _, b := range [][2]string{{"kube-proxy", "kubelet"}, {"kubelet", "kube-scheduler"}, {"kube-apiserver", "etcd"}, {"kubelet", "containerd"}, {"etcd", "agent"}, {"containerd", "agent"}} {
		if pos(b[0]) > pos(b[1]) {
			t.Errorf("%s went after %s: %v", b[0], b[1], finished)
		}
	}

	res, finished = run("kubelet")
	var skipped []string
	for _, o := range res.Outcomes {
		if o.Status == state.StepSkipped {
			skipped = append(skipped, o.Step.Component)
		}
	}
	slices.Sort(skipped)
	if d := cmp.Diff([]string{"agent", "cni", "containerd", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}, skipped); d != "" {
		t.Errorf("skipped after a failed kubelet (-want +got):\n%s\nran %v", d, finished)
	}
}

func TestMissingTools(t *testing.T) {
	td := components.Teardown("w", installed("agent", "cni", "kubelet"), components.HostProbe{}, false)
	errs := missingTools("w", td, func(tool string) bool { return tool == "iptables" })
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "host w: ip is missing") {
		t.Errorf("errors %v, want ip missing on w", errs)
	}
	if errs := missingTools("w", td, func(string) bool { return true }); len(errs) != 0 {
		t.Errorf("every tool present: %v", errs)
	}
	if errs := missingTools("cp", components.Teardown("cp", installed("agent", "etcd"), components.HostProbe{}, false), func(string) bool { return false }); len(errs) != 0 {
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

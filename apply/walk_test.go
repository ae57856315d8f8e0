package apply

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/state"
)

func steps(defs ...[]string) []plan.Step {
	var out []plan.Step
	for _, d := range defs {
		out = append(out, plan.Step{ID: d[0], Component: d[0], Action: plan.Create, Hosts: []string{"h"}, DependsOn: d[1:]})
	}
	return out
}

func TestWalkSkipsDependentsOfAFailureAndFinishesTheRest(t *testing.T) {
	ss := steps([]string{"a"}, []string{"b", "a"}, []string{"c", "b"}, []string{"d"}, []string{"e", "d"})
	journal := filepath.Join(t.TempDir(), "j.jsonl")
	j, err := state.OpenJournal(journal)
	if err != nil {
		t.Fatal(err)
	}
	w := &Walker{MaxSteps: 2, Journal: j, RunID: "run1"}
	boom := errors.New("boom")
	res := w.Walk(context.Background(), ss, func(_ context.Context, s plan.Step) error {
		if s.ID == "b" {
			return boom
		}
		return nil
	}, nil)
	j.Close()
	got := map[string]string{}
	for _, o := range res.Outcomes {
		got[o.Step.ID] = o.Status
	}
	want := map[string]string{"a": state.StepDone, "b": state.StepFailed, "c": state.StepSkipped, "d": state.StepDone, "e": state.StepDone}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("step %s: %s, want %s", k, got[k], v)
		}
	}
	if !errors.Is(res.Err(), boom) {
		t.Fatalf("Err() = %v, want it to wrap boom", res.Err())
	}
	entries, err := state.ReadJournal(journal)
	if err != nil {
		t.Fatal(err)
	}
	if _, complete := state.LastRun(entries); !complete {
		t.Fatal("journal has a step left started")
	}
}

func TestWalkRespectsDependenciesAndBound(t *testing.T) {
	var ss []plan.Step
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		ss = append(ss, plan.Step{ID: id})
	}
	ss = append(ss, plan.Step{ID: "last", DependsOn: []string{"a", "b", "c", "d", "e", "f"}})
	var running, peak atomic.Int32
	var mu sync.Mutex
	var order []string
	w := &Walker{MaxSteps: 3}
	res := w.Walk(context.Background(), ss, func(_ context.Context, s plan.Step) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		mu.Lock()
		order = append(order, s.ID)
		mu.Unlock()
		return nil
	}, nil)
	if res.Err() != nil {
		t.Fatal(res.Err())
	}
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak concurrency %d, want 2..3", p)
	}
	if order[len(order)-1] != "last" {
		t.Fatalf("last ran before its dependencies: %v", order)
	}
}

func TestWalkStopFinishesRunningStepsAndStartsNoMore(t *testing.T) {
	ss := steps([]string{"a"}, []string{"b", "a"}, []string{"c", "b"})
	stop := make(chan struct{})
	var ran []string
	w := &Walker{}
	res := w.Walk(context.Background(), ss, func(ctx context.Context, s plan.Step) error {
		ran = append(ran, s.ID)
		if s.ID == "a" {
			close(stop)
			time.Sleep(30 * time.Millisecond) // a finishes although stop was signalled
		}
		return ctx.Err()
	}, stop)
	if !slices.Equal(ran, []string{"a"}) {
		t.Fatalf("ran %v, want only a", ran)
	}
	if !res.Interrupted || !errors.Is(res.Err(), ErrInterrupted) {
		t.Fatalf("want an interrupted result, got %+v", res)
	}
	if len(res.Outcomes) != 1 || res.Outcomes[0].Status != state.StepDone {
		t.Fatalf("outcomes %+v", res.Outcomes)
	}
}

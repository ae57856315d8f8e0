// Package apply carries out a plan: it walks the step graph with bounded
// parallelism, records every step in the journal, skips what depends on a
// failure, and stops starting new work when asked to, letting running steps
// finish.
package apply

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/state"
)

// StepFunc does one step. It must honour ctx for cancellation.
type StepFunc func(ctx context.Context, s plan.Step) error

// Outcome is what became of one step.
type Outcome struct {
	Step     plan.Step
	Status   string // state.StepDone, StepFailed, StepSkipped
	Err      error
	Duration time.Duration
}

// Result is the outcome of a walk, in the order steps finished.
type Result struct {
	Outcomes    []Outcome
	Interrupted bool // stop was signalled: steps not yet started were left
}

// Failed returns the failed outcomes.
func (r Result) Failed() []Outcome {
	var out []Outcome
	for _, o := range r.Outcomes {
		if o.Status == state.StepFailed {
			out = append(out, o)
		}
	}
	return out
}

// Counts is how many steps of a walk ended how, and how many changes on
// how many hosts the steps that finished made.
type Counts struct {
	Done, Failed, Skipped int
	Changes, Hosts        int
}

// Count counts the outcomes.
func (r Result) Count() Counts {
	var n Counts
	hosts := map[string]bool{}
	for _, o := range r.Outcomes {
		switch o.Status {
		case state.StepDone:
			n.Done++
			n.Changes += len(o.Step.Changes)
			for _, h := range o.Step.Hosts {
				hosts[h] = true
			}
		case state.StepFailed:
			n.Failed++
		case state.StepSkipped:
			n.Skipped++
		}
	}
	n.Hosts = len(hosts)
	return n
}

// Err joins the errors of every failed step, each wrapped with its step.
func (r Result) Err() error {
	var errs []error
	for _, o := range r.Failed() {
		errs = append(errs, fmt.Errorf("step %s: %w", o.Step.ID, o.Err))
	}
	if r.Interrupted {
		errs = append(errs, ErrInterrupted)
	}
	return errors.Join(errs...)
}

// ErrInterrupted means the walk stopped early because it was asked to; the
// next apply continues from what the hosts report.
var ErrInterrupted = errors.New("apply interrupted: finished the running steps and stopped")

// Walker walks a step graph.
type Walker struct {
	// MaxSteps bounds how many steps run at once (host fan-out inside a
	// step is bounded by the step function).
	MaxSteps int
	Journal  *state.Journal // may be nil
	RunID    string
	// OnEvent, if set, is called (serially) when a step starts or ends.
	OnEvent func(Outcome, bool /*started*/)
}

// Walk runs steps (in a valid order, as plan.Graph returns them). A step
// starts when all its dependencies are done; when one fails, every step
// that depends on it, directly or not, is skipped, and the rest go on.
// Closing stop lets running steps finish and starts nothing new; cancelling
// ctx aborts running steps too.
func (w *Walker) Walk(ctx context.Context, steps []plan.Step, run StepFunc, stop <-chan struct{}) Result {
	maxSteps := w.MaxSteps
	if maxSteps <= 0 {
		maxSteps = 10
	}
	status := map[string]string{}
	for _, s := range steps {
		status[s.ID] = ""
	}
	var (
		mu      sync.Mutex
		res     Result
		running int
		wake    = make(chan struct{}, len(steps)+1)
		wg      sync.WaitGroup
	)
	record := func(o Outcome, started bool) {
		// called with mu held
		if w.Journal != nil {
			e := state.Entry{Run: w.RunID, Step: o.Step.ID, Component: o.Step.Component, Action: o.Step.Action.String(), Status: o.Status}
			if len(o.Step.Hosts) == 1 {
				e.Host = o.Step.Hosts[0]
			}
			if started {
				e.Status = state.StepStarted
			}
			if o.Err != nil {
				e.Detail = o.Err.Error()
			}
			if err := w.Journal.Append(e); err != nil && !started {
				o.Err = errors.Join(o.Err, err)
			}
		}
		if !started {
			res.Outcomes = append(res.Outcomes, o)
		}
		if w.OnEvent != nil {
			w.OnEvent(o, started)
		}
	}
	stopSeen := false
	stopped := func() bool {
		if stopSeen {
			return true
		}
		select {
		case <-stop:
			stopSeen = true
		case <-ctx.Done():
			stopSeen = true
		default:
		}
		return stopSeen
	}
	stopCh := stop

	mu.Lock()
	for {
		progressed := false
		pending := 0
		for _, s := range steps {
			if status[s.ID] != "" {
				continue
			}
			blocked, skip := false, ""
			for _, d := range s.DependsOn {
				switch status[d] {
				case state.StepDone:
				case state.StepFailed, state.StepSkipped:
					skip = d
				default:
					blocked = true
				}
			}
			switch {
			case skip != "":
				status[s.ID] = state.StepSkipped
				record(Outcome{Step: s, Status: state.StepSkipped, Err: fmt.Errorf("skipped: depends on %s, which did not finish", skip)}, false)
				progressed = true
			case blocked:
				pending++
			case stopped():
				pending++
			case running >= maxSteps:
				pending++
			default:
				status[s.ID] = "running"
				running++
				progressed = true
				record(Outcome{Step: s}, true)
				wg.Add(1)
				go func(s plan.Step) {
					defer wg.Done()
					start := time.Now()
					err := run(ctx, s)
					mu.Lock()
					o := Outcome{Step: s, Status: state.StepDone, Err: err, Duration: time.Since(start)}
					if err != nil {
						o.Status = state.StepFailed
					}
					status[s.ID] = o.Status
					running--
					record(o, false)
					mu.Unlock()
					wake <- struct{}{}
				}(s)
			}
		}
		if progressed {
			continue
		}
		if running == 0 {
			res.Interrupted = pending > 0 && stopped()
			break
		}
		mu.Unlock()
		select {
		case <-wake:
		case <-stopCh:
			stopCh = nil // seen (stopped() now reports it); keep waiting for running steps
		}
		mu.Lock()
	}
	mu.Unlock()
	wg.Wait()
	return res
}

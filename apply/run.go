package apply

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/state"
)

// Summary is what an apply did.
type Summary struct {
	Result   Result
	Uploaded int64 // bytes sent to hosts
	Elapsed  time.Duration
	// HaltedBy is the failed health gate that stopped the apply early (nil
	// when it ran to the end or was interrupted).
	HaltedBy error
}

// Apply carries out a computed plan: steps in graph order with bounded
// parallelism, each recorded in the journal and in the state file as it
// finishes. Closing stop finishes the running steps and starts no more.
// The caller holds the state lock.
func (s *Session) Apply(ctx context.Context, c *Computed, runID string, stop <-chan struct{}) (Summary, error) {
	start := time.Now()
	st, err := s.Store.Read()
	if err != nil {
		return Summary{}, err
	}
	if st == nil {
		st = state.New(s.Cluster.Name())
	}
	journal, err := state.OpenJournal(s.Store.JournalPath())
	if err != nil {
		return Summary{}, err
	}
	defer journal.Close()

	var (
		stMu     sync.Mutex
		uploaded int64
	)
	inst := &components.Installer{
		Cluster:         s.Cluster.Name(),
		GateTimeout:     s.gateTimeout(),
		KeepGenerations: s.Cluster.Upgrade().KeepGenerations,
		OnUpload: func(host, dest string, sent int64) {
			stMu.Lock()
			uploaded += sent
			stMu.Unlock()
			if sent > 0 {
				s.logf("  %s: uploaded %s (%s)", host, dest, HumanBytes(sent))
				s.emit(Event{Type: EventUpload, Host: host, Path: dest, Bytes: sent})
			}
		},
	}
	// record saves what a host now runs in the local state; the hosts'
	// installed.json is already written.
	record := func(ch plan.Change, d components.Desired) error {
		stMu.Lock()
		defer stMu.Unlock()
		if ch.Action == plan.Delete {
			st.RemoveComponent(ch.Host, ch.Name)
		} else {
			hash, _ := d.ConfigHash()
			st.SetComponent(ch.Host, d.Address, ch.Name, state.ComponentState{
				Version: d.Version, ConfigHash: hash, UpdatedAt: time.Now().UTC(),
			})
		}
		return s.Store.Write(st)
	}

	// A failed health gate halts the apply like Ctrl-C: running steps finish,
	// nothing new starts, so an upgrade never goes on past a component that
	// had to be rolled back.
	halt := make(chan struct{})
	var haltOnce sync.Once
	var haltedBy error
	haltNow := func(err error) {
		haltOnce.Do(func() {
			haltedBy = err
			close(halt)
		})
	}
	go func() {
		select {
		case <-stop:
			haltNow(nil)
		case <-halt:
		}
	}()

	var snapshotOnce sync.Once
	var snapshotErr error
	runStep := func(ctx context.Context, step plan.Step) error {
		s.logf("%s %s on %s ...", step.Action.Symbol(), step.Component, joinHosts(step.Hosts))
		// Before the first etcd member of a running cluster changes: a
		// snapshot, and a quorum check.
		if step.Component == bundle.Etcd && step.Action != plan.Create {
			snapshotOnce.Do(func() {
				from := c.World.Installed[step.Hosts[0]].Components[bundle.Etcd].Version
				if err := s.waitEtcdQuorum(ctx, s.gateTimeout()); err != nil {
					snapshotErr = fmt.Errorf("etcd is not healthy before the change, nothing was touched: %w", err)
					return
				}
				_, snapshotErr = s.snapshotEtcd(ctx, step.Hosts[0], from)
			})
			if snapshotErr != nil {
				return snapshotErr
			}
		}
		var (
			mu   sync.Mutex
			errs []error
			wg   sync.WaitGroup
			sem  = make(chan struct{}, s.parallelism())
		)
		for _, addr := range step.Changes {
			ch, ok := c.Plan.Change(addr)
			if !ok {
				return fmt.Errorf("plan has no change %s", addr)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				t0 := time.Now()
				err := s.applyChange(ctx, inst, c, ch)
				if err == nil && ch.Name == bundle.Etcd && ch.Action != plan.Create {
					// The next member goes only when every member is back
					// and the cluster has its quorum.
					if qerr := s.waitEtcdQuorum(ctx, s.gateTimeout()); qerr != nil {
						err = fmt.Errorf("etcd on %s: the cluster did not regain quorum after the change: %w", ch.Host, qerr)
					}
				}
				if err == nil {
					err = record(ch, c.Desired[addr])
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					s.emit(Event{Type: EventChange, Step: step.ID, Component: ch.Name, Action: ch.Action.String(), Host: ch.Host,
						Status: state.StepFailed, Error: err.Error(), Seconds: time.Since(t0).Seconds()})
					errs = append(errs, err)
					var ge *components.GateError
					if errors.As(err, &ge) {
						haltNow(err)
					}
					return
				}
				s.logf("  %s: %s %s done in %s", ch.Host, ch.Name, ch.Action, time.Since(t0).Round(100*time.Millisecond))
				s.emit(Event{Type: EventChange, Step: step.ID, Component: ch.Name, Action: ch.Action.String(), Host: ch.Host,
					Status: state.StepDone, Seconds: time.Since(t0).Seconds()})
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}

	w := &Walker{MaxSteps: s.parallelism(), Journal: journal, RunID: runID, OnEvent: func(o Outcome, started bool) {
		e := Event{Type: EventStepEnd, Step: o.Step.ID, Component: o.Step.Component, Action: o.Step.Action.String(),
			Hosts: o.Step.Hosts, Status: o.Status, Seconds: o.Duration.Seconds()}
		if started {
			e.Type, e.Status, e.Seconds = EventStepStart, "", 0
		}
		if o.Err != nil {
			e.Error = o.Err.Error()
		}
		s.emit(e)
	}}
	res := w.Walk(ctx, c.Plan.Steps, runStep, halt)
	haltOnce.Do(func() { close(halt) }) // ends the forwarding goroutine

	// Nothing changed on hosts but the state may be new (first plan after
	// a lost state folder): keep it in step with the hosts.
	stMu.Lock()
	if err := s.syncState(st, c.World); err != nil {
		res.Outcomes = append(res.Outcomes, Outcome{Step: plan.Step{ID: "state"}, Status: state.StepFailed, Err: err})
	}
	stMu.Unlock()
	return Summary{Result: res, Uploaded: uploaded, Elapsed: time.Since(start), HaltedBy: haltedBy}, res.Err()
}

func (s *Session) applyChange(ctx context.Context, inst *components.Installer, c *Computed, ch plan.Change) error {
	h, ok := s.Host(ch.Host)
	if !ok {
		return fmt.Errorf("host %s is not connected", ch.Host)
	}
	if ch.Action == plan.Delete {
		return inst.Remove(ctx, h, ch.Name)
	}
	d, ok := c.Desired[ch.Address]
	if !ok {
		return fmt.Errorf("no desired state for %s", ch.Address)
	}
	if ch.Name == components.AgentComponent {
		return inst.InstallAgent(ctx, h, d)
	}
	var current *components.InstalledComponent
	if ic, ok := c.World.Installed[ch.Host].Components[ch.Name]; ok {
		current = &ic
	}
	if ch.Action == plan.Replace && current != nil {
		if err := inst.Remove(ctx, h, ch.Name); err != nil {
			return err
		}
		current = nil
	}
	// With upgrade.drain, a node's pods move away before its kubelet
	// changes, and it takes pods again once the kubelet passed its gate
	// (the node is Ready on the new version) or was rolled back.
	drain := ch.Name == bundle.Kubelet && current != nil && s.Cluster.Upgrade().Drain
	if drain {
		if err := s.drainNode(ctx, ch.Host); err != nil {
			return err
		}
	}
	err := inst.Install(ctx, h, d, current)
	var ge *components.GateError
	if drain && (err == nil || errors.As(err, &ge) && ge.RollbackErr == nil) {
		err = errors.Join(err, s.uncordonNode(ctx, ch.Host))
	}
	if err != nil {
		return err
	}
	if ch.Name == bundle.Kubelet {
		return s.syncNode(ctx, ch.Host) // labels and taints only an administrator may set
	}
	return nil
}

// syncState fills the local state with what hosts reported for components
// the run did not touch, so a lost state folder is rebuilt from the hosts.
func (s *Session) syncState(st *state.State, w World) error {
	changed := false
	for host, inst := range w.Installed {
		h, _ := s.Cluster.Host(host)
		for name, ic := range inst.Components {
			if _, ok := st.Component(host, name); ok {
				continue
			}
			st.SetComponent(host, h.Address, name, state.ComponentState{
				Version: ic.Version, Generation: ic.Number, ConfigHash: ic.ConfigHash, UpdatedAt: ic.UpdatedAt,
			})
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.Store.Write(st)
}

func joinHosts(hs []string) string {
	if len(hs) > 4 {
		return fmt.Sprintf("%s, %s and %d more", hs[0], hs[1], len(hs)-2)
	}
	out := ""
	for i, h := range hs {
		if i > 0 {
			out += ", "
		}
		out += h
	}
	return out
}

// HumanBytes renders a byte count for people.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

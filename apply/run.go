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
	"github.com/clusterctl/clusterctl/provision"
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

// Apply carries out a computed plan of any mode: steps in graph order,
// at most Parallelism host operations at once over the whole run, each
// step recorded in the journal and each change in the state file as it
// finishes. Closing stop finishes the running steps and starts no more; a
// failed health gate does the same. The caller holds the state lock.
func (s *Session) Apply(ctx context.Context, c *Computed, runID string, stop <-chan struct{}) (Summary, error) {
	start := time.Now()
	st, err := s.Store.Read()
	if err != nil {
		return Summary{}, err
	}
	if st == nil && c.Plan.Mode != plan.ModeDestroy { // a destroy never creates a state
		if st, err = s.newState(ctx); err != nil {
			return Summary{}, err
		}
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
	record := func(ch plan.Change) error {
		stMu.Lock()
		defer stMu.Unlock()
		if st == nil {
			return nil
		}
		switch {
		case ch.Action == plan.Delete:
			if _, ok := st.Component(ch.Host, ch.Name); !ok {
				return nil
			}
			st.RemoveComponent(ch.Host, ch.Name)
		case c.Plan.Mode == plan.ModeRollback:
			ic := c.World.Installed[ch.Host].Components[ch.Name]
			to := ic.Previous[0]
			h, _ := s.Cluster.Host(ch.Host)
			st.SetComponent(ch.Host, h.Address, ch.Name, state.ComponentState{
				Version: to.Version, Generation: to.Number, ConfigHash: to.ConfigHash, UpdatedAt: time.Now().UTC()})
		default:
			d := c.Desired[ch.Address]
			hash, _ := d.ConfigHash()
			st.SetComponent(ch.Host, d.Address, ch.Name, state.ComponentState{
				Version: d.Version, ConfigHash: hash, UpdatedAt: time.Now().UTC(),
			})
		}
		return s.Store.Write(st)
	}

	// A failed health gate halts the run like Ctrl-C: running steps finish,
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

	env := &components.Env{Mode: c.Plan.Mode, Cluster: s.Cluster, Installed: c.World.Installed, Host: s.Host,
		EtcdQuorum: func(ctx context.Context) error { return s.waitEtcdQuorum(ctx, s.gateTimeout()) },
		EtcdSnapshot: func(ctx context.Context, host, from string) error {
			_, err := s.snapshotEtcd(ctx, host, from)
			return err
		},
		Logf: s.logf,
		Desired: func(address string) (components.Desired, bool) {
			d, ok := c.Desired[address]
			return d, ok
		}}
	ex := &executor{s: s, c: c, inst: inst, env: env, once: map[string]*onceErr{}, barriers: map[string]*startBarrier{}}
	inst.BeforeStart = ex.beforeStart
	runStep := func(ctx context.Context, step plan.Step) error {
		s.logf("%s %s on %s ...", step.Action.Symbol(), step.Component, joinHosts(step.Hosts))
		var changes []plan.Change
		for _, addr := range step.Changes {
			ch, ok := c.Plan.Change(addr)
			if !ok {
				return fmt.Errorf("plan has no change %s", addr)
			}
			changes = append(changes, ch)
		}
		barrier := ex.startTogether(step, changes)
		errs := provision.ForEach(ctx, changes, len(changes), func(ctx context.Context, _ int, ch plan.Change) error {
			if barrier != nil {
				defer barrier.arrive(ch.Host) // a member that fails early holds nobody back
			}
			t0 := time.Now()
			err := ex.change(ctx, ch)
			if err == nil {
				err = record(ch)
			}
			e := Event{Type: EventChange, Step: step.ID, Component: ch.Name, Action: ch.Action.String(), Host: ch.Host,
				Status: state.StepDone, Seconds: time.Since(t0).Seconds()}
			if err != nil {
				e.Status, e.Error = state.StepFailed, err.Error()
				if errors.Is(err, components.ErrGateFailed) {
					haltNow(err)
				}
			} else {
				s.logf("  %s: %s %s done in %s", ch.Host, ch.Name, c.Plan.Mode.Did(ch.Action), time.Since(t0).Round(100*time.Millisecond))
			}
			s.emit(e)
			return err
		})
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
	if c.Plan.Mode == plan.ModeApply {
		stMu.Lock()
		if err := s.syncState(st, c.World); err != nil {
			res.Outcomes = append(res.Outcomes, Outcome{Step: plan.Step{ID: "state"}, Status: state.StepFailed, Err: err})
		}
		stMu.Unlock()
	}
	if st != nil && c.Plan.Mode != plan.ModeDestroy {
		stMu.Lock()
		if err := s.stampLineage(ctx, st); err != nil {
			res.Outcomes = append(res.Outcomes, Outcome{Step: plan.Step{ID: "state"}, Status: state.StepFailed, Err: err})
		}
		stMu.Unlock()
	}
	return Summary{Result: res, Uploaded: uploaded, Elapsed: time.Since(start), HaltedBy: haltedBy}, res.Err()
}

// executor carries out one change at a time on its host, with the
// component's hooks around it. Every host operation holds one slot of the
// session's run-wide limit.
type executor struct {
	s    *Session
	c    *Computed
	inst *components.Installer
	env  *components.Env

	mu       sync.Mutex
	once     map[string]*onceErr      // what runs at most once a run: a component's Once hook, an agent start on a host
	barriers map[string]*startBarrier // by component: members that start together
}

// startTogether returns a barrier for the members of a new etcd cluster
// (every change of the step creates a member and no host runs etcd yet),
// or nil. With fewer run-wide slots than members the members could not all
// wait at once, so they start as they come, as before.
func (e *executor) startTogether(step plan.Step, changes []plan.Change) *startBarrier {
	if e.c.Plan.Mode != plan.ModeApply || step.Component != bundle.Etcd || len(changes) < 2 || e.s.parallelism() < len(changes) {
		return nil
	}
	var hosts []string
	for _, ch := range changes {
		if ch.Action != plan.Create {
			return nil
		}
		hosts = append(hosts, ch.Host)
	}
	for _, inst := range e.c.World.Installed {
		if _, ok := inst.Components[bundle.Etcd]; ok {
			return nil
		}
	}
	b := newStartBarrier(hosts)
	e.mu.Lock()
	e.barriers[step.Component] = b
	e.mu.Unlock()
	return b
}

// beforeStart is the Installer's BeforeStart: members of a new etcd
// cluster wait for each other there.
func (e *executor) beforeStart(ctx context.Context, host, component string) error {
	e.mu.Lock()
	b := e.barriers[component]
	e.mu.Unlock()
	if b == nil {
		return nil
	}
	return b.wait(ctx, host)
}

func (e *executor) onceFor(key string) *onceErr {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, ok := e.once[key]
	if !ok {
		o = &onceErr{}
		e.once[key] = o
	}
	return o
}

type onceErr struct {
	sync.Once
	err error
}

func (e *executor) change(ctx context.Context, ch plan.Change) error {
	h, ok := e.s.Host(ch.Host)
	if !ok {
		return fmt.Errorf("host %s is not connected", ch.Host)
	}
	hooks := components.Hooks{}
	if sp, ok := components.Lookup(ch.Name); ok {
		hooks = sp.Hooks
	}
	if hooks.Once != nil {
		o := e.onceFor(ch.Name)
		o.Do(func() { o.err = hooks.Once(ctx, e.env, ch) })
		if o.err != nil {
			return o.err
		}
	}
	do := func() error {
		release, err := e.s.slot(ctx)
		if err != nil {
			return err
		}
		defer release()
		return e.do(ctx, h, ch)
	}
	if hooks.Around != nil {
		return hooks.Around(ctx, e.env, ch, do)
	}
	return do()
}

// do is the change itself, by mode and action.
func (e *executor) do(ctx context.Context, h components.Host, ch plan.Change) error {
	installed := e.c.World.Installed[ch.Host].Components
	switch {
	case ch.Action == plan.Delete:
		opts := components.UninstallOptions{KeepData: e.c.Plan.KeepData}
		var kept []string
		if opts.KeepData {
			kept = components.KeptData(append(e.c.World.Installed[ch.Host].Names(), e.c.Probes[ch.Host].Running...))
		}
		// The first delete on a host whose agent did not answer starts it
		// (once for the host); components are stopped through it.
		var startAgent func() error
		if p, ok := e.c.Probes[ch.Host]; ok && !p.AgentUp {
			o := e.onceFor("start the agent on " + ch.Host)
			startAgent = func() error {
				o.Do(func() { o.err = components.StartAgent(ctx, h) })
				return o.err
			}
		}
		return e.inst.Delete(ctx, h, ch.Name, opts, kept, startAgent)
	case e.c.Plan.Mode == plan.ModeRollback:
		_, err := e.inst.Rollback(ctx, h, ch.Name, installed[ch.Name])
		return err
	}
	d, ok := e.c.Desired[ch.Address]
	if !ok {
		return fmt.Errorf("no desired state for %s", ch.Address)
	}
	var current *components.InstalledComponent
	if ic, ok := installed[ch.Name]; ok {
		current = &ic
	}
	return e.inst.Apply(ctx, h, d, current)
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

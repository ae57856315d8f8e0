package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

type cmdKind int

const (
	cmdRestart cmdKind = iota
	cmdStop
	cmdStart
	cmdUpdate
	cmdRemove
)

// command is a request to a component's goroutine; the reply says what
// was done.
type command struct {
	kind  cmdKind
	res   Resolved // cmdUpdate
	reply chan Change
}

type phase int

const (
	phaseStopped phase = iota // no process, none wanted (stopped on request)
	phaseWaiting              // to be started once its After components are healthy
	phaseRunning              // a process is running
	phaseBackoff              // exited or failed to start; restart at restartAt
)

// component supervises one component. Everything but the fields under mu
// is owned by its run goroutine; commands reach it through cmds.
type component struct {
	a    *Agent
	name string
	cmds chan command

	res         Resolved // the unit to run (the current generation)
	proc        *process
	phase       phase
	stopping    bool
	failures    int // consecutive failed runs: the backoff exponent
	restartAt   time.Time
	waitUntil   time.Time
	waitingFor  []string
	restarts    int
	started     bool
	stopped     bool // stopped on request; survives agent restarts
	lastExit    *ExitInfo
	startErr    string
	probeCancel context.CancelFunc

	mu           sync.Mutex
	st           ComponentStatus
	changed      chan struct{} // closed and replaced on every status change
	instance     uint64        // counts processes; stale probe results are dropped
	everPassed   bool          // a probe passed since the process started
	healthySince time.Time
	unitErr      string // the current link cannot be used; the old unit keeps running
}

func (c *component) logPath() string { return c.a.opt.Paths.LogFile(c.name) }

// run is the component's goroutine. It returns when the agent shuts down
// (leaving the process running) or the component is removed.
func (c *component) run(ctx context.Context) {
	defer c.a.wg.Done()
	for {
		var timer <-chan time.Time
		var exited <-chan struct{}
		switch c.phase {
		case phaseWaiting:
			if c.tryStart() {
				continue
			}
			timer = time.After(c.a.opt.PollEvery)
		case phaseBackoff:
			timer = time.After(time.Until(c.restartAt))
		case phaseRunning:
			exited = c.proc.exited
		}
		select {
		case <-ctx.Done():
			c.detach()
			return
		case cmd := <-c.cmds:
			ch, done := c.handle(cmd)
			cmd.reply <- ch
			if done {
				return
			}
		case <-timer:
			if c.phase == phaseBackoff {
				c.start()
			}
		case <-exited:
			c.onExit()
		}
	}
}

// tryStart starts the component when its After components are running and
// healthy, or when waiting for them took too long.
func (c *component) tryStart() bool {
	missing := c.a.unready(c.res.Unit.After)
	if len(missing) > 0 && time.Now().Before(c.waitUntil) {
		if fmt.Sprint(missing) != fmt.Sprint(c.waitingFor) {
			c.waitingFor = missing
			c.publish()
		}
		return false
	}
	if len(missing) > 0 {
		c.a.log.Warn("starting before its dependencies are healthy", "component", c.name, "waiting_for", missing)
	}
	c.waitingFor = nil
	c.start()
	return true
}

func (c *component) start() {
	logMark(c.logPath(), "starting generation %d", c.res.Generation)
	p, err := c.a.spawn(c.res, c.logPath())
	if err != nil {
		c.startErr = err.Error()
		c.lastExit = &ExitInfo{Time: time.Now().UTC(), Code: -1, Reason: "start failed: " + err.Error()}
		logMark(c.logPath(), "start failed: %v", err)
		c.a.log.Error("start failed", "component", c.name, "generation", c.res.Generation, "err", err)
		c.scheduleRestart(false)
		c.persist()
		c.publish()
		return
	}
	p.stopSignal, p.stopTimeout = c.res.Unit.stopSignal(), c.res.Unit.stopTimeout()
	if c.started {
		c.restarts++
	}
	c.started = true
	c.startErr = ""
	c.proc = p
	c.phase = phaseRunning
	c.a.log.Info("started", "component", c.name, "generation", p.generation, "pid", p.pid, "restarts", c.restarts)
	c.beginProcess()
}

// beginProcess publishes a new (or adopted) process with a fresh health
// view, then starts probing it: no probe result of an earlier process can
// count for it.
func (c *component) beginProcess() {
	c.mu.Lock()
	c.instance++
	inst := c.instance
	c.everPassed = false
	c.healthySince = time.Time{}
	c.st.Healthy, c.st.Passes, c.st.ProbeError, c.st.LastProbe = false, 0, "", nil
	c.mu.Unlock()
	c.persist()
	c.publish()

	h := c.res.Unit.Health
	ctx, cancel := context.WithCancel(context.Background())
	c.probeCancel = cancel
	begun := time.Now()
	go func() {
		for {
			err := Probe(ctx, h)
			if ctx.Err() != nil {
				return
			}
			c.recordProbe(inst, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.probeInterval(h, time.Since(begun))):
			}
		}
	}()
}

// GateProbeInterval is how often a process that has not yet passed
// DefaultGateSuccesses probes in a row is probed: a health gate waits on
// exactly that, so it should not wait whole intervals of the unit's.
const GateProbeInterval = 250 * time.Millisecond

// probeInterval is GateProbeInterval (or the unit's, if shorter) while a
// process younger than a gate's timeout has not yet passed a gate's worth
// of probes, and the unit's interval otherwise: a process that stays
// unhealthy is not probed fast for ever.
func (c *component) probeInterval(h Health, age time.Duration) time.Duration {
	c.mu.Lock()
	passes := c.st.Passes
	c.mu.Unlock()
	if passes < DefaultGateSuccesses && age < DefaultGateTimeout {
		return min(GateProbeInterval, h.interval())
	}
	return h.interval()
}

func (c *component) stopProber() {
	if c.probeCancel != nil {
		c.probeCancel()
		c.probeCancel = nil
	}
}

func (c *component) recordProbe(inst uint64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if inst != c.instance {
		return
	}
	now := time.Now().UTC()
	c.st.LastProbe = &now
	wasHealthy := c.st.Healthy
	if err == nil {
		c.st.Healthy = true
		c.st.Passes++
		c.st.ProbeError = ""
		c.everPassed = true
		if c.healthySince.IsZero() {
			c.healthySince = now
		}
		if c.st.State == StateStarting && c.st.PID != 0 {
			c.st.State = StateRunning
		}
	} else {
		c.st.Healthy = false
		c.st.Passes = 0
		c.st.ProbeError = err.Error()
		c.healthySince = time.Time{}
	}
	if wasHealthy != c.st.Healthy {
		if c.st.Healthy {
			c.a.log.Info("healthy", "component", c.name)
		} else {
			c.a.log.Warn("unhealthy", "component", c.name, "err", err)
		}
	}
	c.notifyLocked()
}

func (c *component) onExit() {
	p := c.proc
	ei := p.exitInfo()
	p.reapGroup()
	c.stopProber()
	c.mu.Lock()
	hs := c.healthySince
	c.mu.Unlock()
	// A process that stayed healthy long enough earns a fresh backoff.
	reset := !hs.IsZero() && time.Since(hs) >= c.a.opt.BackoffReset
	c.proc = nil
	c.lastExit = &ei
	logMark(c.logPath(), "pid %d exited: %s", p.pid, ei.Reason)
	c.a.log.Warn("exited", "component", c.name, "pid", p.pid, "status", ei.Reason)
	c.scheduleRestart(reset)
	c.persist()
	c.publish()
}

// scheduleRestart enters backoff: BackoffBase doubled per consecutive
// failure, at most BackoffMax.
func (c *component) scheduleRestart(reset bool) {
	if reset {
		c.failures = 0
	}
	d := backoffDelay(c.a.opt.BackoffBase, c.a.opt.BackoffMax, c.failures)
	c.failures++
	c.restartAt = time.Now().Add(d)
	c.phase = phaseBackoff
}

// backoffDelay is base doubled failures times, at most max.
func backoffDelay(base, max time.Duration, failures int) time.Duration {
	d := base
	for i := 0; i < failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// stopProcess stops the running process; why goes into the log and the
// last exit.
func (c *component) stopProcess(why string) error {
	p := c.proc
	c.stopping = true
	c.publish()
	c.stopProber()
	ei, err := p.stop(p.stopSignal, p.stopTimeout)
	c.stopping = false
	if err != nil {
		c.a.log.Error("stop failed", "component", c.name, "pid", p.pid, "err", err)
		c.publish()
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	p.reapGroup()
	ei.Reason = why + ": " + ei.Reason
	c.lastExit = &ei
	c.proc = nil
	c.phase = phaseStopped // the caller decides what comes next
	logMark(c.logPath(), "pid %d stopped (%s)", p.pid, ei.Reason)
	c.a.log.Info("stopped", "component", c.name, "pid", p.pid, "why", why)
	return nil
}

// handle runs one command; done means the goroutine must end.
func (c *component) handle(cmd command) (ch Change, done bool) {
	ch = Change{Name: c.name, Generation: c.res.Generation}
	fail := func(err error) (Change, bool) {
		ch.Error = err.Error()
		c.persist()
		c.publish()
		return ch, false
	}
	switch cmd.kind {
	case cmdRestart:
		ch.Action = ActionRestart
		if c.proc != nil {
			if err := c.stopProcess("restart requested"); err != nil {
				return fail(err)
			}
		}
		c.stopped, c.failures = false, 0
		c.start()
		ch.Error = c.startErr
	case cmdStart:
		if c.proc != nil {
			ch.Action = ActionUnchanged
			return ch, false
		}
		ch.Action = ActionStart
		c.stopped, c.failures = false, 0
		c.start()
		ch.Error = c.startErr
	case cmdStop:
		ch.Action = ActionStop
		if c.proc != nil {
			if err := c.stopProcess("stop requested"); err != nil {
				return fail(err)
			}
		}
		c.stopped = true
		c.phase = phaseStopped
		c.persist()
		c.publish()
	case cmdUpdate:
		c.setUnitError(nil)
		if cmd.res.Generation == c.res.Generation && cmd.res.Hash == c.res.Hash {
			ch.Action = ActionUnchanged
			return ch, false
		}
		ch.FromGeneration = c.res.Generation
		ch.Generation = cmd.res.Generation
		if err := c.replace(cmd.res, &ch); err != nil {
			return fail(err)
		}
		ch.Error = c.startErr
	case cmdRemove:
		ch.Action = ActionStop
		if c.proc != nil {
			if err := c.stopProcess("removed from the configuration"); err != nil {
				return fail(err)
			}
		}
		c.phase = phaseStopped
		if err := os.Remove(c.a.opt.Paths.PIDFile(c.name)); err != nil && !os.IsNotExist(err) {
			c.a.log.Warn("remove pid record", "component", c.name, "err", err)
		}
		c.publish()
		return ch, true
	}
	return ch, false
}

// replace switches to a new unit: stop the old process if any, then start
// (after the After components are healthy). A changed unit also clears an
// earlier stop request: it means apply wants it running.
func (c *component) replace(res Resolved, ch *Change) error {
	ch.Action = ActionStart
	if c.proc != nil {
		ch.Action = ActionRestart
		why := fmt.Sprintf("generation %d replaced by %d", c.proc.generation, res.Generation)
		if c.proc.generation == res.Generation {
			why = fmt.Sprintf("generation %d changed", res.Generation)
		}
		if err := c.stopProcess(why); err != nil {
			return err
		}
	}
	c.res = res
	c.stopped, c.failures, c.startErr = false, 0, ""
	c.phase = phaseWaiting
	c.waitUntil = time.Now().Add(c.a.opt.AfterTimeout)
	c.tryStart()
	return nil
}

// detach lets go of the component when the agent exits: the process keeps
// running and the pid record stays for the next agent.
func (c *component) detach() {
	c.stopProber()
	if c.proc != nil && c.proc.stopWatch != nil {
		close(c.proc.stopWatch)
	}
	c.persist()
}

func (c *component) persist() {
	rec := pidRecord{
		Generation: c.res.Generation, UnitHash: c.res.Hash, Dir: c.res.Dir,
		Restarts: c.restarts, Started: c.started, LastExit: c.lastExit,
	}
	if c.proc != nil {
		rec = c.proc.record(c.restarts, c.started, c.lastExit)
	}
	rec.Stopped = c.stopped
	if err := writePIDRecord(c.a.opt.Paths.PIDFile(c.name), rec); err != nil {
		c.a.log.Error("pid record", "component", c.name, "err", err)
	}
}

// publish copies the goroutine's view into the status readers see.
func (c *component) publish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.st
	st.Name = c.name
	st.Generation = c.res.Generation
	st.UnitHash = c.res.Hash
	st.Version = c.res.Unit.Version
	st.HealthType = c.res.Unit.Health.Type
	st.Restarts = c.restarts
	st.LastExit = c.lastExit
	st.WaitingFor = c.waitingFor
	st.Error = c.unitErr
	if c.startErr != "" {
		st.Error = c.startErr
	}
	st.PID, st.Since, st.Adopted, st.NextStart = 0, nil, false, nil
	switch c.phase {
	case phaseRunning:
		p := c.proc
		st.PID, st.Since, st.Adopted = p.pid, timePtr(p.since.UTC()), p.adopted
		st.Generation, st.UnitHash = p.generation, p.hash
		st.State = StateStarting
		if c.everPassed {
			st.State = StateRunning
		}
		if c.stopping {
			st.State = StateStopping
		}
	case phaseWaiting:
		st.State = StateStarting
	case phaseBackoff:
		st.State = StateBackoff
		if c.startErr != "" {
			st.State = StateFailed
		}
		st.NextStart = timePtr(c.restartAt.UTC())
	case phaseStopped:
		st.State = StateStopped
	}
	if c.phase != phaseRunning {
		st.Healthy, st.Passes, st.ProbeError, st.LastProbe = false, 0, "", nil
	}
	c.notifyLocked()
}

func (c *component) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *component) setUnitError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unitErr = ""
	if err != nil {
		c.unitErr = "current generation unusable, still running the previous one: " + err.Error()
	}
	c.st.Error = c.unitErr
	c.notifyLocked()
}

// snapshot returns the component's status and a channel closed at its next
// change.
func (c *component) snapshot() (ComponentStatus, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st, c.changed
}

// send hands a command to the goroutine and waits for its reply.
func (c *component) send(ctx context.Context, kind cmdKind, res Resolved) (Change, error) {
	cmd := command{kind: kind, res: res, reply: make(chan Change, 1)}
	select {
	case c.cmds <- cmd:
	case <-ctx.Done():
		return Change{}, ctx.Err()
	}
	// Once accepted, the command completes even if the caller goes away.
	return <-cmd.reply, nil
}

// newComponent builds a component from its current unit and whatever the
// previous agent recorded: a live recorded process is adopted (not
// restarted) when it runs this very unit, and replaced when the unit changed
// while no agent was watching.
func (a *Agent) newComponent(res Resolved) *component {
	c := &component{a: a, name: res.Unit.Name, cmds: make(chan command), res: res, changed: make(chan struct{}), phase: phaseWaiting}
	rec, ok, err := readPIDRecord(a.opt.Paths.PIDFile(c.name))
	if err != nil {
		a.log.Warn("unreadable pid record; starting afresh", "component", c.name, "err", err)
	}
	if ok {
		c.restarts, c.started, c.lastExit = rec.Restarts, rec.Started, rec.LastExit
		// A stop request holds only for the unit it was made for.
		c.stopped = rec.Stopped && rec.Generation == res.Generation && rec.UnitHash == res.Hash
		if rec.PID > 0 && sameProcessAlive(rec.PID, rec.StartTime) {
			p := adopt(rec, a.opt.PollEvery)
			p.stopSignal, p.stopTimeout = recordedStop(rec, res.Unit)
			c.proc = p
			c.phase = phaseRunning
		} else if rec.PID > 0 {
			c.lastExit = &ExitInfo{Time: time.Now().UTC(), Code: -1, Reason: "exited while no agent was watching"}
		}
	}
	if c.proc == nil && c.stopped {
		c.phase = phaseStopped
	}
	c.publish()
	return c
}

// begin decides the component's first action; it runs before the goroutine.
func (c *component) begin() Change {
	ch := Change{Name: c.name, Generation: c.res.Generation}
	switch {
	case c.proc != nil && c.proc.generation == c.res.Generation && c.proc.hash == c.res.Hash:
		ch.Action = ActionAdopt
		c.a.log.Info("adopted", "component", c.name, "pid", c.proc.pid, "generation", c.proc.generation)
		c.beginProcess()
	case c.proc != nil:
		ch.FromGeneration = c.proc.generation
		c.a.log.Info("adopted a process of a replaced unit", "component", c.name, "pid", c.proc.pid, "generation", c.proc.generation)
		res := c.res
		c.res = Resolved{Unit: res.Unit, Generation: c.proc.generation, Hash: c.proc.hash, Dir: c.proc.dir}
		if err := c.replace(res, &ch); err != nil {
			ch.Error = err.Error()
		}
	case c.stopped:
		ch.Action = ActionUnchanged
		c.phase = phaseStopped
		c.publish()
	default:
		ch.Action = ActionStart
		c.phase = phaseWaiting
		c.waitUntil = time.Now().Add(c.a.opt.AfterTimeout)
		c.tryStart()
	}
	return ch
}

// recordedStop is how to stop an adopted process: as its own unit said, if
// its generation folder is still there.
func recordedStop(rec pidRecord, cur Unit) (syscall.Signal, time.Duration) {
	if b, err := os.ReadFile(filepath.Join(rec.Dir, UnitFile)); err == nil {
		if u, err := DecodeUnit(rec.Dir, b); err == nil {
			return u.stopSignal(), u.stopTimeout()
		}
	}
	return cur.stopSignal(), cur.stopTimeout()
}

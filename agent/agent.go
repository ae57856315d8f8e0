package agent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
)

// Options configure an Agent. Zero values take the defaults noted.
type Options struct {
	Paths   Paths
	Logger  *slog.Logger // default: text on stderr
	Version string       // reported by ping and status

	BackoffBase  time.Duration // first restart delay; 1s
	BackoffMax   time.Duration // longest restart delay; 30s
	BackoffReset time.Duration // healthy this long and the next delay is BackoffBase again; 60s
	AfterTimeout time.Duration // longest wait for After components; 60s
	PollEvery    time.Duration // adopted-process exit checks, After checks; 500ms
	RotateSize   int64         // rotate a log larger than this; 50 MiB
	RotateKeep   int           // rotated files kept (<name>.log.1 ..); 3
	RotateEvery  time.Duration // log size checks; 10s
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.BackoffBase, time.Second)
	def(&o.BackoffMax, 30*time.Second)
	def(&o.BackoffReset, 60*time.Second)
	def(&o.AfterTimeout, 60*time.Second)
	def(&o.PollEvery, 500*time.Millisecond)
	def(&o.RotateEvery, 10*time.Second)
	if o.RotateSize <= 0 {
		o.RotateSize = 50 << 20
	}
	if o.RotateKeep <= 0 {
		o.RotateKeep = 3
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if o.Version == "" {
		o.Version = "dev"
	}
}

// ErrAlreadyRunning means another agent holds the run folder's lock.
var ErrAlreadyRunning = errors.New("an agent is already running")

// Agent supervises the components found under Paths.ConfigRoot.
type Agent struct {
	opt Options
	log *slog.Logger

	forkMu   sync.Mutex // serializes forks (rlimit juggling)
	reloadMu sync.Mutex // one reload at a time

	mu       sync.Mutex
	comps    map[string]*component
	unitErrs map[string]string // components with a current link but no usable unit and no process

	wg sync.WaitGroup // component goroutines
	// registered is closed once the first reload has registered the
	// components, so that no request sees an agent without them.
	registered     chan struct{}
	registeredOnce sync.Once
	ctx            context.Context
	shutdown       context.CancelFunc
	info           *AgentInfo
}

// New returns an agent; Run starts it.
func New(opt Options) *Agent {
	opt.setDefaults()
	return &Agent{opt: opt, log: opt.Logger, comps: map[string]*component{}, unitErrs: map[string]string{}, registered: make(chan struct{})}
}

// Run supervises until ctx ends or a shutdown request arrives. It leaves
// every component running: stopping or upgrading the agent never stops
// them; the next agent adopts them.
func (a *Agent) Run(ctx context.Context) error {
	p := a.opt.Paths
	if err := os.MkdirAll(p.RunDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(p.LogDir, 0o750); err != nil {
		return err
	}
	lock, err := lockRunDir(p)
	if err != nil {
		return err
	}
	defer lock.Close()

	exe, _ := os.Executable()
	hash, err := fileSHA256("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("hash own binary: %w", err)
	}
	raiseNofile()

	ln, err := listenControl(p.Socket())
	if err != nil {
		return err
	}
	defer os.Remove(p.Socket())
	defer ln.Close()
	if err := atomicfile.Write(p.AgentPIDFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(p.AgentPIDFile())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.ctx, a.shutdown = ctx, cancel
	a.info = selfInfo(p, a.opt.Version, exe, hash, time.Now().UTC())
	a.log.Info("agent starting", "pid", os.Getpid(), "version", a.opt.Version, "config_root", p.ConfigRoot)

	go a.serve(ctx, ln)
	if changes, err := a.Reload(ctx); err != nil {
		a.log.Error("initial load", "err", err)
	} else {
		a.log.Info("initial load done", "components", len(changes))
	}
	go a.rotateLoop(ctx)

	<-ctx.Done()
	ln.Close()
	a.wg.Wait()
	a.log.Info("agent exiting; components keep running")
	return nil
}

func lockRunDir(p Paths) (*os.File, error) {
	f, err := os.OpenFile(p.lockFile(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := os.ReadFile(p.AgentPIDFile())
			return nil, fmt.Errorf("%w (pid %s, lock %s)", ErrAlreadyRunning, strings.TrimSpace(string(pid)), p.lockFile())
		}
		return nil, fmt.Errorf("lock %s: %w", p.lockFile(), err)
	}
	return f, nil
}

// listenControl opens the control socket, replacing a stale one (the run
// folder lock proves no other agent owns it). 0600: root only.
func listenControl(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// raiseNofile lifts the agent's soft open-files limit to its hard limit.
// Setting it explicitly also makes every child inherit this value (Go would
// otherwise restore the limit the agent started with), so components see the
// same limit however the agent was started.
func raiseNofile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (a *Agent) rotateLoop(ctx context.Context) {
	t := time.NewTicker(a.opt.RotateEvery)
	defer t.Stop()
	for {
		a.rotateAll()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Agent) get(name string) *component {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.comps[name]
}

// unready lists the named components that are configured here and not yet
// running and healthy. Names not configured on this host are ignored.
func (a *Agent) unready(names []string) []string {
	var out []string
	for _, n := range names {
		c := a.get(n)
		if c == nil {
			continue
		}
		if st, _ := c.snapshot(); st.PID == 0 || !st.Healthy {
			out = append(out, n)
		}
	}
	return out
}

// Reload re-reads every component's current link: new components start,
// changed ones (generation or any file of the generation folder) restart,
// unchanged ones are left alone, and components whose current link is gone
// stop. A component whose new unit is unusable keeps running its old one and
// is reported in the error.
func (a *Agent) Reload(ctx context.Context) ([]Change, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	markRegistered := func() { a.registeredOnce.Do(func() { close(a.registered) }) }
	defer markRegistered()
	p := a.opt.Paths
	units, unitErrs, err := ScanComponents(p)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	recNames, err := pidRecordNames(p.RunDir)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}

	type job struct {
		name string
		run  func() Change
	}
	var jobs []job
	a.mu.Lock()
	var gone []string
	for name := range a.comps {
		if _, ok := units[name]; !ok && unitErrs[name] == nil {
			gone = append(gone, name)
		}
	}
	for _, name := range recNames {
		if _, ok := units[name]; !ok && unitErrs[name] == nil && a.comps[name] == nil {
			gone = append(gone, name)
		}
	}
	if len(gone) > 0 {
		if _, err := os.Stat(p.ConfigRoot); err != nil {
			a.mu.Unlock()
			return nil, fmt.Errorf("reload: config root %s unreadable (%w); not stopping %s", p.ConfigRoot, err, strings.Join(gone, ", "))
		}
	}
	for name, res := range units {
		if c := a.comps[name]; c != nil {
			jobs = append(jobs, job{name, func() Change {
				ch, err := c.send(ctx, cmdUpdate, res)
				if err != nil {
					ch = Change{Name: name, Error: err.Error()}
				}
				return ch
			}})
			continue
		}
		c := a.newComponent(res)
		a.comps[name] = c
		a.wg.Add(1)
		started := make(chan Change, 1)
		go func() {
			started <- c.begin()
			c.run(a.ctx)
		}()
		jobs = append(jobs, job{name, func() Change { return <-started }})
	}
	a.unitErrs = map[string]string{}
	for name, err := range unitErrs {
		if c := a.comps[name]; c != nil {
			c.setUnitError(err)
			jobs = append(jobs, job{name, func() Change {
				st, _ := c.snapshot()
				return Change{Name: name, Action: ActionUnchanged, Generation: st.Generation, Error: err.Error()}
			}})
			continue
		}
		// A process recorded by an earlier agent is adopted with the unit
		// it was started from, so it stays supervised.
		if old, ok := a.recordedUnit(name); ok {
			c := a.newComponent(old)
			a.comps[name] = c
			c.setUnitError(err)
			a.wg.Add(1)
			started := make(chan Change, 1)
			go func() {
				ch := c.begin()
				ch.Error = err.Error()
				started <- ch
				c.run(a.ctx)
			}()
			jobs = append(jobs, job{name, func() Change { return <-started }})
			continue
		}
		a.unitErrs[name] = err.Error()
		jobs = append(jobs, job{name, func() Change { return Change{Name: name, Error: err.Error()} }})
	}
	for _, name := range gone {
		if c := a.comps[name]; c != nil {
			jobs = append(jobs, job{name, func() Change {
				ch, err := c.send(ctx, cmdRemove, Resolved{})
				if err != nil {
					return Change{Name: name, Action: ActionStop, Error: err.Error()}
				}
				a.mu.Lock()
				if a.comps[name] == c {
					delete(a.comps, name)
				}
				a.mu.Unlock()
				return ch
			}})
		} else {
			jobs = append(jobs, job{name, func() Change { return a.stopOrphan(name) }})
		}
	}
	a.mu.Unlock()
	markRegistered()

	changes := make([]Change, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			changes[i] = j.run()
		}()
	}
	wg.Wait()
	sort.Slice(changes, func(i, j int) bool { return changes[i].Name < changes[j].Name })
	var errs []error
	for _, ch := range changes {
		if ch.Action != ActionUnchanged {
			a.log.Info("reload", "component", ch.Name, "action", ch.Action, "generation", ch.Generation, "from_generation", ch.FromGeneration, "err", ch.Error)
		}
		if ch.Error != "" {
			errs = append(errs, fmt.Errorf("%s: %s", ch.Name, ch.Error))
		}
	}
	return changes, errors.Join(errs...)
}

// recordedUnit returns the unit a live recorded process was started from.
func (a *Agent) recordedUnit(name string) (Resolved, bool) {
	rec, ok, err := readPIDRecord(a.opt.Paths.PIDFile(name))
	if err != nil || !ok || rec.PID <= 0 || !sameProcessAlive(rec.PID, rec.StartTime) {
		return Resolved{}, false
	}
	res, err := ResolveGeneration(a.opt.Paths, name, rec.Generation)
	if err != nil || res.Hash != rec.UnitHash {
		return Resolved{}, false
	}
	return res, true
}

// stopOrphan stops a process recorded by an earlier agent for a component
// that has no current link any more, and forgets it. Only processes started
// from a generation folder under this config root are touched.
func (a *Agent) stopOrphan(name string) Change {
	path := a.opt.Paths.PIDFile(name)
	ch := Change{Name: name, Action: ActionStop}
	rec, ok, err := readPIDRecord(path)
	if err != nil || !ok {
		os.Remove(path)
		return ch
	}
	ch.Generation = rec.Generation
	rel, err := filepath.Rel(a.opt.Paths.ConfigRoot, rec.Dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		ch.Error = fmt.Sprintf("pid record %s names %s, outside %s; left alone", path, rec.Dir, a.opt.Paths.ConfigRoot)
		return ch
	}
	if rec.PID > 0 && sameProcessAlive(rec.PID, rec.StartTime) {
		p := adopt(rec, a.opt.PollEvery)
		defer close(p.stopWatch)
		sig, timeout := recordedStop(rec, Unit{})
		if _, err := p.stop(sig, timeout); err != nil {
			ch.Error = err.Error()
			return ch
		}
		logMark(a.opt.Paths.LogFile(name), "pid %d stopped: removed from the configuration", rec.PID)
		a.log.Info("stopped orphan", "component", name, "pid", rec.PID)
	}
	os.Remove(path)
	return ch
}

// Status lists every component, sorted by name.
func (a *Agent) Status() []ComponentStatus {
	a.mu.Lock()
	comps := make([]*component, 0, len(a.comps))
	for _, c := range a.comps {
		comps = append(comps, c)
	}
	out := make([]ComponentStatus, 0, len(comps)+len(a.unitErrs))
	for name, e := range a.unitErrs {
		out = append(out, ComponentStatus{Name: name, State: StateFailed, Error: e})
	}
	a.mu.Unlock()
	for _, c := range comps {
		st, _ := c.snapshot()
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (a *Agent) control(ctx context.Context, name string, kind cmdKind) (Change, error) {
	c := a.get(name)
	if c == nil {
		return Change{}, a.unknown(name)
	}
	ch, err := c.send(ctx, kind, Resolved{})
	if err == nil && ch.Error != "" {
		err = errors.New(ch.Error)
	}
	return ch, err
}

func (a *Agent) unknown(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.unitErrs[name]; ok {
		return fmt.Errorf("component %q has no usable unit: %s", name, e)
	}
	names := make([]string, 0, len(a.comps))
	for n := range a.comps {
		names = append(names, n)
	}
	sort.Strings(names)
	return fmt.Errorf("unknown component %q (configured: %s)", name, strings.Join(names, ", "))
}

// Defaults of the health gate.
const (
	DefaultGateSuccesses = 3
	DefaultGateTimeout   = 120 * time.Second
)

// WaitHealthy is the health gate: it returns once the component runs
// generation gen (any generation when 0) and its probe has passed successes
// times in a row. On timeout the error says why, and the last log lines come
// back too.
func (a *Agent) WaitHealthy(ctx context.Context, name string, gen, successes int, timeout time.Duration) (ComponentStatus, []string, error) {
	if successes <= 0 {
		successes = DefaultGateSuccesses
	}
	if timeout <= 0 {
		timeout = DefaultGateTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	baseRestarts := -1 // restarts when the wanted generation was first seen
	for {
		var st ComponentStatus
		var changed <-chan struct{}
		c := a.get(name)
		if c != nil {
			st, changed = c.snapshot()
			if (gen == 0 || st.Generation == gen) && st.PID != 0 && st.State != StateStopping && st.Passes >= successes {
				return st, nil, nil
			}
			// A generation that keeps exiting will not become healthy:
			// fail the gate now rather than at the timeout, so a rollback
			// starts at once.
			if gen == 0 || st.Generation == gen {
				if baseRestarts < 0 {
					baseRestarts = st.Restarts
				}
				if st.Restarts-baseRestarts >= CrashLoopExits {
					tail, _ := TailLines(a.opt.Paths.LogFile(name), 20)
					msg := fmt.Sprintf("%s generation %d is crash-looping: it exited %d times while waiting to become healthy", name, st.Generation, st.Restarts-baseRestarts)
					if st.LastExit != nil {
						msg += "; last exit: " + st.LastExit.Reason
					}
					return st, tail, errors.New(msg)
				}
			}
		}
		select {
		case <-changed:
		case <-time.After(a.opt.PollEvery):
		case <-ctx.Done():
			return st, nil, ctx.Err()
		case <-deadline.C:
			tail, _ := TailLines(a.opt.Paths.LogFile(name), 20)
			return st, tail, gateError(a, c, st, name, gen, successes, timeout)
		}
	}
}

// CrashLoopExits is how many exits of the gated generation fail a health
// gate before its timeout.
const CrashLoopExits = 3

func gateError(a *Agent, c *component, st ComponentStatus, name string, gen, successes int, timeout time.Duration) error {
	if c == nil {
		return fmt.Errorf("%s not healthy after %s: %w", name, timeout, a.unknown(name))
	}
	if gen != 0 && st.Generation != gen {
		return fmt.Errorf("%s not healthy after %s: runs generation %d, not %d (reload after switching current?)", name, timeout, st.Generation, gen)
	}
	msg := fmt.Sprintf("%s generation %d not healthy after %s: state %s, %d/%d passing probes in a row", name, st.Generation, timeout, st.State, st.Passes, successes)
	if st.ProbeError != "" {
		msg += "; last probe: " + st.ProbeError
	}
	if st.Error != "" {
		msg += "; " + st.Error
	}
	if st.LastExit != nil && st.State != StateRunning && st.State != StateStarting {
		msg += "; last exit: " + st.LastExit.Reason
	}
	return errors.New(msg)
}

// serve answers control requests until ctx ends.
func (a *Agent) serve(ctx context.Context, ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			a.log.Warn("accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go a.serveConn(ctx, conn)
	}
}

// serveConn reads requests one line at a time. A peer that goes away
// cancels its in-flight wait-healthy; other requests run to completion.
func (a *Agent) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	peer, peerGone := context.WithCancel(ctx)
	defer peerGone()
	reqs := make(chan Request)
	go func() {
		defer close(reqs)
		defer peerGone()
		sc := bufio.NewScanner(conn)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			var r Request
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = Request{Op: "invalid: " + err.Error()}
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	enc := json.NewEncoder(conn)
	for r := range reqs {
		resp := a.handle(peer, r)
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := enc.Encode(resp); err != nil {
			return
		}
		if r.Op == OpShutdown {
			a.log.Info("shutdown requested over the control socket")
			a.shutdown()
			return
		}
	}
}

func (a *Agent) handle(ctx context.Context, r Request) Response {
	fail := func(err error) Response { return Response{Error: err.Error()} }
	select {
	case <-a.registered:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	needName := func() error {
		if r.Name == "" {
			return fmt.Errorf("%s needs a component name", r.Op)
		}
		return nil
	}
	switch r.Op {
	case OpPing, OpShutdown:
		return Response{OK: true, Agent: a.info}
	case OpStatus:
		return Response{OK: true, Agent: a.info, Components: a.Status()}
	case OpReload:
		changes, err := a.Reload(ctx)
		resp := Response{OK: err == nil, Changes: changes}
		if err != nil {
			resp.Error = err.Error()
		}
		return resp
	case OpRestart, OpStop, OpStart:
		if err := needName(); err != nil {
			return fail(err)
		}
		kind := map[string]cmdKind{OpRestart: cmdRestart, OpStop: cmdStop, OpStart: cmdStart}[r.Op]
		ch, err := a.control(ctx, r.Name, kind)
		resp := Response{OK: err == nil}
		if ch.Name != "" {
			resp.Changes = []Change{ch}
		}
		if c := a.get(r.Name); c != nil {
			st, _ := c.snapshot()
			resp.Components = []ComponentStatus{st}
		}
		if err != nil {
			resp.Error = err.Error()
		}
		return resp
	case OpWaitHealthy:
		if err := needName(); err != nil {
			return fail(err)
		}
		st, tail, err := a.WaitHealthy(ctx, r.Name, r.Generation, r.Successes, time.Duration(r.Timeout))
		resp := Response{OK: err == nil, Log: tail}
		if st.Name != "" {
			resp.Components = []ComponentStatus{st}
		}
		if err != nil {
			resp.Error = err.Error()
		}
		return resp
	}
	return fail(fmt.Errorf("unknown request %q", r.Op))
}

package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"sort"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// process is one running instance of a component: a child this agent
// started (exit status known) or one adopted from an earlier agent (exit
// noticed through a pidfd or /proc, status unknown).
type process struct {
	pid        int
	startTime  uint64
	generation int
	hash       string
	dir        string
	since      time.Time
	adopted    bool
	exited     <-chan struct{}
	exit       ExitInfo      // valid once exited is closed (own children)
	stopWatch  chan struct{} // ends the watch of an adopted process when the agent exits

	stopSignal  syscall.Signal
	stopTimeout time.Duration
}

// baseEnv is every component's environment before its unit's env: fixed, so
// a component does not inherit whatever SSH session started the agent.
func baseEnv() map[string]string {
	return map[string]string{
		"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME": "/root",
		"LANG": "C.UTF-8",
	}
}

func envList(u Unit) []string {
	env := baseEnv()
	for k, v := range u.Env {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// openLog opens a component's log for appending. O_APPEND matters: after a
// copy-truncate rotation the child's next write lands at the new end of file.
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// logMark appends one agent line to a component's log, so that "logs" shows
// starts and exits among the component's own output.
func logMark(path, format string, args ...any) {
	f, err := openLog(path)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "--- clusterctl agent %s: %s ---\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// spawn starts r's unit in a new session (and so a new process group whose
// id is the pid), with stdin from /dev/null and stdout and stderr appended
// straight to logPath. Nothing ties the child to the agent: no pipes, no
// death signal.
func (a *Agent) spawn(r Resolved, logPath string) (*process, error) {
	u := r.Unit
	dir := u.Dir
	if dir == "" {
		dir = r.Dir
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("working folder: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("working folder %s is not a folder", dir)
	}
	logf, err := openLog(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	cred, home, err := credential(u.User, os.Geteuid(), user.Lookup)
	if err != nil {
		return nil, err
	}
	if cred != nil {
		for _, dir := range u.Owns {
			if err := chownTree(dir, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("hand %s to %s: %w", dir, u.User, err)
			}
		}
	}
	cmd := exec.Command(u.Exec, u.Args...)
	cmd.Env = envList(u)
	if _, set := u.Env["HOME"]; home != "" && !set {
		cmd.Env = withEnv(cmd.Env, "HOME", home)
	}
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}

	if err := a.startWithLimits(cmd, u.Limits); err != nil {
		return nil, err
	}
	p := &process{
		pid: cmd.Process.Pid, generation: r.Generation, hash: r.Hash, dir: r.Dir,
		since: time.Now(),
	}
	// The child is not reaped before Wait, so its /proc entry is there even
	// if it already exited.
	st, err := readProcStat(p.pid)
	if err != nil {
		a.log.Warn("read start time", "pid", p.pid, "err", err)
	}
	p.startTime = st.StartTime
	if u.OOMScoreAdj != nil {
		path := "/proc/" + strconv.Itoa(p.pid) + "/oom_score_adj"
		if err := os.WriteFile(path, []byte(strconv.Itoa(*u.OOMScoreAdj)), 0); err != nil {
			a.log.Warn("set oom_score_adj", "component", u.Name, "err", err)
		}
	}
	exited := make(chan struct{})
	p.exited = exited
	go func() {
		err := cmd.Wait()
		p.exit = exitInfo(cmd.ProcessState, err)
		close(exited)
	}()
	return p, nil
}

// startWithLimits starts cmd with the unit's RLIMIT_NOFILE. A child inherits
// the agent's limits, so the agent sets its own around the fork; forks are
// serialized so no other child sees the temporary value.
func (a *Agent) startWithLimits(cmd *exec.Cmd, l Limits) error {
	a.forkMu.Lock()
	defer a.forkMu.Unlock()
	if l.NOFILE == 0 {
		return cmd.Start()
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		return err
	}
	// Only the soft limit is lowered (never the hard one: lowering it could
	// not be undone without CAP_SYS_RESOURCE). A hard limit above the
	// agent's needs that privilege; without it the child gets the agent's
	// hard limit, with a warning.
	want := syscall.Rlimit{Cur: l.NOFILE, Max: max(old.Max, l.NOFILE)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		want = syscall.Rlimit{Cur: min(l.NOFILE, old.Max), Max: old.Max}
		a.log.Warn("cannot raise the hard nofile limit; using the agent's", "want", l.NOFILE, "limit", old.Max, "err", err)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return fmt.Errorf("set nofile limit %d: %w", want.Cur, err)
		}
	}
	err := cmd.Start()
	if rerr := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); rerr != nil {
		a.log.Warn("restore nofile limit", "err", rerr)
	}
	return err
}

func exitInfo(ps *os.ProcessState, err error) ExitInfo {
	ei := ExitInfo{Time: time.Now().UTC(), Code: -1}
	if ps == nil {
		ei.Reason = fmt.Sprint(err)
		return ei
	}
	ei.Reason = ps.String()
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ei.Signal = unix.SignalName(ws.Signal())
		return ei
	}
	ei.Code = ps.ExitCode()
	return ei
}

// adopt takes over a process recorded by an earlier agent. The caller has
// checked that it is alive and is the recorded one.
func adopt(rec pidRecord, pollEvery time.Duration) *process {
	p := &process{
		pid: rec.PID, startTime: rec.StartTime, generation: rec.Generation, hash: rec.UnitHash,
		dir: rec.Dir, since: rec.Since, adopted: true, stopWatch: make(chan struct{}),
	}
	if p.since.IsZero() {
		p.since = time.Now()
	}
	p.exited = watchExit(rec.PID, rec.StartTime, pollEvery, p.stopWatch)
	return p
}

// exitInfo returns how the process ended; call after exited is closed.
func (p *process) exitInfo() ExitInfo {
	if p.adopted {
		return ExitInfo{Time: time.Now().UTC(), Code: -1, Reason: "exited (status unknown: adopted from an earlier agent)"}
	}
	return p.exit
}

// signalGroup signals the process group the process leads. An adopted
// process that is somehow not a group leader gets the signal alone.
func (p *process) signalGroup(sig syscall.Signal) error {
	target := -p.pid
	if p.adopted {
		if st, err := readProcStat(p.pid); err != nil || st.PGID != p.pid {
			target = p.pid
		}
	}
	err := syscall.Kill(target, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// stop sends sig to the group, waits up to timeout, then kills the group and
// waits for the exit. It returns how the process ended.
func (p *process) stop(sig syscall.Signal, timeout time.Duration) (ExitInfo, error) {
	select {
	case <-p.exited:
		return p.exitInfo(), nil
	default:
	}
	if err := p.signalGroup(sig); err != nil {
		return ExitInfo{}, fmt.Errorf("signal %s to pid %d: %w", unix.SignalName(sig), p.pid, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
		ei := p.exitInfo()
		if p.adopted {
			ei.Reason = "exited after " + unix.SignalName(sig)
		}
		return ei, nil
	case <-t.C:
	}
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		return ExitInfo{}, fmt.Errorf("kill pid %d: %w", p.pid, err)
	}
	select {
	case <-p.exited:
		ei := p.exitInfo()
		if p.adopted {
			ei.Reason = "killed"
		}
		ei.Reason += fmt.Sprintf(" (SIGKILL after the %s stop timeout)", timeout)
		return ei, nil
	case <-time.After(10 * time.Second):
		return ExitInfo{}, fmt.Errorf("pid %d still there 10s after SIGKILL", p.pid)
	}
}

// reapGroup kills what is left of the process group right after its leader
// exited (helpers the component forked). The kernel keeps a group id from
// being reused as long as any member lives.
func (p *process) reapGroup() {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
}

func (p *process) record(restarts int, started bool, last *ExitInfo) pidRecord {
	return pidRecord{
		PID: p.pid, StartTime: p.startTime, Generation: p.generation, UnitHash: p.hash, Dir: p.dir,
		Since: p.since.UTC(), Restarts: restarts, Started: started, LastExit: last,
	}
}

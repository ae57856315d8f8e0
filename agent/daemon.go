package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
)

// Ways the agent runs.
const (
	ModeAuto     = "auto"     // systemd where systemd is PID 1, detached elsewhere
	ModeSystemd  = "systemd"  // a systemd service with KillMode=process
	ModeDetached = "detached" // a session leader of its own, output to agent.log
)

// SystemdUnitName is the agent's systemd service.
const SystemdUnitName = "clusterctl-agent.service"

// DefaultSystemdUnitPath is where install-unit writes the service.
const DefaultSystemdUnitPath = "/etc/systemd/system/" + SystemdUnitName

// StartOptions say how to start the agent.
type StartOptions struct {
	Paths Paths
	Exe   string   // the binary to run; compared (sha256) with the running agent's
	Args  []string // arguments that make Exe run the agent in the foreground
	Env   []string // added to the environment of a detached agent
	Mode  string   // ModeAuto by default
	// UnitPath is the systemd service file; DefaultSystemdUnitPath by default.
	UnitPath string
	// Wait bounds how long to wait for the new agent to answer; 20s by default.
	Wait time.Duration
}

// StartResult says what Start did.
type StartResult struct {
	Mode   string `json:"mode"`
	Action string `json:"action"` // "none" (already running this binary), "started", "upgraded"
	PID    int    `json:"pid"`
}

// SystemdRunning reports whether systemd is this host's init.
func SystemdRunning() bool {
	if st, err := os.Stat("/run/systemd/system"); err != nil || !st.IsDir() {
		return false
	}
	comm, err := os.ReadFile("/proc/1/comm")
	return err == nil && strings.TrimSpace(string(comm)) == "systemd"
}

// Start makes sure an agent runs from o.Exe. An agent already answering
// from the same binary is left alone. One from another binary (an upgrade)
// is asked to exit, which leaves the components running, and a new one is
// started; it adopts them.
func Start(ctx context.Context, o StartOptions) (StartResult, error) {
	if o.Wait <= 0 {
		o.Wait = 20 * time.Second
	}
	if o.UnitPath == "" {
		o.UnitPath = DefaultSystemdUnitPath
	}
	mode := o.Mode
	if mode == "" || mode == ModeAuto {
		mode = ModeDetached
		if SystemdRunning() {
			mode = ModeSystemd
		}
	}
	hash, err := fileSHA256(o.Exe)
	if err != nil {
		return StartResult{}, fmt.Errorf("hash %s: %w", o.Exe, err)
	}
	cl := Client{Socket: o.Paths.Socket()}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	running, pingErr := cl.Ping(pctx)
	cancel()
	res := StartResult{Mode: mode, Action: "started"}

	switch mode {
	case ModeSystemd:
		changed, err := InstallSystemdUnit(o.UnitPath, o.Exe, o.Args)
		if err != nil {
			return res, err
		}
		if pingErr == nil && running.ExeHash == hash && !changed {
			res.Action, res.PID = "none", running.PID
			return res, nil
		}
		verb := "start"
		if pingErr == nil {
			res.Action = "upgraded"
			if systemdMainPID(ctx) == running.PID {
				verb = "restart" // KillMode=process: only the agent is stopped
			} else if err := stopAgent(ctx, cl, running); err != nil {
				return res, err
			}
		} else if changed {
			verb = "restart"
		}
		if err := systemctl(ctx, verb, SystemdUnitName); err != nil {
			return res, err
		}
		info, err := waitAgent(ctx, cl, hash, 0, o.Wait, nil)
		if err != nil {
			return res, fmt.Errorf("agent did not answer after systemctl %s: %w (see journalctl -u %s)", verb, err, SystemdUnitName)
		}
		res.PID = info.PID
		return res, nil

	case ModeDetached:
		if pingErr == nil {
			if running.ExeHash == hash {
				res.Action, res.PID = "none", running.PID
				return res, nil
			}
			res.Action = "upgraded"
			if err := stopAgent(ctx, cl, running); err != nil {
				return res, err
			}
		} else if !errors.Is(pingErr, ErrNotRunning) {
			return res, fmt.Errorf("control socket %s: %w", o.Paths.Socket(), pingErr)
		}
		pid, err := spawnDetached(ctx, o, hash)
		res.PID = pid
		return res, err
	}
	return res, fmt.Errorf("unknown agent mode %q (want auto, systemd or detached)", o.Mode)
}

// spawnDetached starts the agent in a new session with its output appended
// to agent.log, so it outlives the SSH session that started it, and waits
// until it answers.
func spawnDetached(ctx context.Context, o StartOptions, hash string) (int, error) {
	if err := os.MkdirAll(o.Paths.LogDir, 0o750); err != nil {
		return 0, err
	}
	logf, err := openLog(o.Paths.AgentLog())
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(o.Exe, o.Args...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start agent: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reaps it if we live that long
	pid := cmd.Process.Pid
	if _, err := waitAgent(ctx, Client{Socket: o.Paths.Socket()}, hash, pid, o.Wait, exited); err != nil {
		tail, _ := TailLines(o.Paths.AgentLog(), 10)
		return pid, fmt.Errorf("agent (pid %d) did not come up: %w\n%s", pid, err, strings.Join(tail, "\n"))
	}
	return pid, nil
}

// waitAgent polls until an agent answers from the binary with hash (and
// with pid, when not 0).
func waitAgent(ctx context.Context, cl Client, hash string, pid int, wait time.Duration, exited <-chan struct{}) (*AgentInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var last error
	for {
		info, err := cl.Ping(ctx)
		switch {
		case err != nil:
			last = err
		case info.ExeHash != hash:
			last = fmt.Errorf("agent pid %d runs another binary", info.PID)
		case pid != 0 && info.PID != pid:
			last = fmt.Errorf("agent pid %d answers, want %d", info.PID, pid)
		default:
			return info, nil
		}
		select {
		case <-exited:
			return nil, errors.New("it exited")
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopAgent asks the running agent to exit and waits until it is gone.
// Components keep running.
func stopAgent(ctx context.Context, cl Client, running *AgentInfo) error {
	st, err := readProcStat(running.PID)
	if _, serr := cl.Shutdown(ctx); serr != nil {
		return fmt.Errorf("stop agent pid %d: %w", running.PID, serr)
	}
	if err != nil {
		return nil // already gone
	}
	deadline := time.Now().Add(30 * time.Second)
	for sameProcessAlive(running.PID, st.StartTime) {
		if time.Now().After(deadline) {
			return fmt.Errorf("agent pid %d still running 30s after shutdown", running.PID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// StopAgent stops the agent, never the components: under systemd through
// systemctl (or Restart=always would bring it back), else over the socket.
func StopAgent(ctx context.Context, p Paths, unitPath string) error {
	if unitPath == "" {
		unitPath = DefaultSystemdUnitPath
	}
	if _, err := os.Stat(unitPath); err == nil && SystemdRunning() {
		return systemctl(ctx, "stop", SystemdUnitName)
	}
	cl := Client{Socket: p.Socket()}
	info, err := cl.Ping(ctx)
	if err != nil {
		return err
	}
	return stopAgent(ctx, cl, info)
}

// SystemdUnit renders the agent's service. KillMode=process: stopping or
// restarting the service signals the agent only, never the components it
// started (they live in the same cgroup). Delegate=yes lets containerd and
// the kubelet manage cgroups below it.
func SystemdUnit(exe string, args []string) string {
	var b strings.Builder
	b.WriteString(`[Unit]
Description=clusterctl agent: supervises this host's Kubernetes components
After=network-online.target local-fs.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=`)
	b.WriteString(systemdQuote(exe))
	for _, a := range args {
		b.WriteString(" " + systemdQuote(a))
	}
	b.WriteString(`
Restart=always
RestartSec=2s
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity

[Install]
WantedBy=multi-user.target
`)
	return b.String()
}

func systemdQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"'\\;$%") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

// InstallSystemdUnit writes the service file when its content differs,
// reloads systemd and enables the service. It does not start it.
func InstallSystemdUnit(unitPath, exe string, args []string) (changed bool, err error) {
	want := []byte(SystemdUnit(exe, args))
	have, err := os.ReadFile(unitPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if !bytes.Equal(have, want) {
		if err := atomicfile.Write(unitPath, want, 0o644); err != nil {
			return false, err
		}
		changed = true
		if err := systemctl(context.Background(), "daemon-reload"); err != nil {
			return changed, err
		}
	}
	return changed, systemctl(context.Background(), "enable", SystemdUnitName)
}

func systemctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func systemdMainPID(ctx context.Context) int {
	out, err := exec.CommandContext(ctx, "systemctl", "show", "-p", "MainPID", "--value", SystemdUnitName).Output()
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscan(string(out), &pid)
	return pid
}

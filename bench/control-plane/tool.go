package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/bench/internal/benchkit"
)

const clusterHCL = `cluster "bench" {
  kubernetes_version = "1.37.2"
}
`

// controlPlane are the components whose readiness both sides measure.
var controlPlane = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

type toolResult struct {
	probes    marks
	stepsDone time.Duration // the last control-plane step reported done
	apply     time.Duration // the apply process exited
	reapply   time.Duration // a second apply that changed nothing
	timeline  timeline
}

// toolRound applies the one-host cluster on a fresh lab, then applies
// again; the first round also harvests the floor's files.
func (b *bench) toolRound(ctx context.Context, round int) (res toolResult, err error) {
	dir := filepath.Join(b.work, fmt.Sprintf("tool-%d", round))
	h, err := b.labUp(ctx, dir)
	if err != nil {
		return res, err
	}
	defer func() {
		if derr := b.labDown(ctx, dir); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "cluster.hcl"), []byte(clusterHCL), 0o644); err != nil {
		return res, err
	}

	p := newProbes(h, filepath.Join(dir, ".clusterctl", "pki"))
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	type watched struct {
		m   marks
		err error
	}
	watchDone := make(chan watched, 1)
	start := time.Now()
	go func() {
		m, err := p.watch(watchCtx, start)
		watchDone <- watched{m, err}
	}()
	lines, err := b.apply(ctx, dir, start, "apply-1.log")
	if err != nil {
		return res, err
	}
	res.apply = lines[len(lines)-1].at
	// The apply waited for every health gate, so the probes have passed or
	// are about to.
	var w watched
	select {
	case w = <-watchDone:
	case <-time.After(10 * time.Second):
		stopWatch()
		w = <-watchDone
	}
	if w.err != nil {
		return res, fmt.Errorf("probes after the apply (%s): %w", w.m, w.err)
	}
	res.probes = w.m
	if res.stepsDone, err = stepsDone(lines, h.name); err != nil {
		return res, err
	}
	if res.timeline, err = newTimeline(lines, filepath.Join(h.fs, "var", "log", "clusterctl", "agent.log"), start); err != nil {
		return res, err
	}

	again := time.Now()
	lines, err = b.apply(ctx, dir, again, "apply-2.log")
	if err != nil {
		return res, err
	}
	res.reapply = lines[len(lines)-1].at
	if !containsLine(lines, "No changes.") {
		return res, fmt.Errorf("the second apply changed something (see %s)", filepath.Join(dir, "apply-2.log"))
	}

	kubeconfig := filepath.Join(dir, "admin.conf")
	if out, err := exec.CommandContext(ctx, b.bin, "-chdir="+dir, "kubeconfig", "-o", kubeconfig).CombinedOutput(); err != nil {
		return res, fmt.Errorf("kubeconfig: %w\n%s", err, out)
	}
	if err := b.kubectlReadyz(ctx, kubeconfig); err != nil {
		return res, err
	}
	if round == 1 {
		if err := b.harvest(h, kubeconfig); err != nil {
			return res, fmt.Errorf("harvest the floor's files: %w", err)
		}
	}
	return res, nil
}

// line is one line the apply printed, and when.
type line struct {
	at   time.Duration // since the start
	text string
}

// apply runs `clusterctl apply -auto-approve` in dir, keeps its output in
// logName and returns its lines, the last one marking the exit.
func (b *bench) apply(ctx context.Context, dir string, start time.Time, logName string) ([]line, error) {
	logPath := filepath.Join(dir, logName)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	rec := &recorder{start: start, log: logf}
	cmd := exec.CommandContext(ctx, b.bin, "-chdir="+dir, "apply", "-auto-approve")
	cmd.Stdout, cmd.Stderr = rec, rec
	// On cancellation let the apply finish its running step and save its
	// state, as a user's Ctrl-C would.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 3 * time.Minute
	err = cmd.Run()
	lines := rec.done()
	if err != nil {
		return lines, fmt.Errorf("apply: %w; its output:\n%s", err, tail(lines, 30))
	}
	return lines, nil
}

// recorder timestamps each line written to it.
type recorder struct {
	start time.Time
	log   io.Writer
	mu    sync.Mutex
	buf   []byte
	lines []line
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := time.Since(r.start)
	r.log.Write(p)
	r.buf = append(r.buf, p...)
	for {
		i := bytes.IndexByte(r.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		r.lines = append(r.lines, line{at, string(r.buf[:i])})
		r.buf = r.buf[i+1:]
	}
}

// done returns the lines and a last one with the exit time.
func (r *recorder) done() []line {
	r.mu.Lock()
	defer r.mu.Unlock()
	at := time.Since(r.start)
	if len(r.buf) > 0 {
		r.lines = append(r.lines, line{at, string(r.buf)})
		r.buf = nil
	}
	return append(r.lines, line{at, "(exit)"})
}

func tail(lines []line, n int) string {
	var sb strings.Builder
	for _, l := range lines[max(0, len(lines)-n):] {
		sb.WriteString(l.text + "\n")
	}
	return sb.String()
}

func containsLine(lines []line, s string) bool {
	for _, l := range lines {
		if strings.Contains(l.text, s) {
			return true
		}
	}
	return false
}

// The apply's progress lines: "+ etcd on cp-1 ..." when a step starts and
// "  cp-1: etcd create done in 9.7s" when it ends.
var (
	stepStartRE = regexp.MustCompile(`^\S+ (?P<component>\S+) on (?P<host>\S+) \.\.\.$`)
	stepDoneRE  = regexp.MustCompile(`^\s+(?P<host>\S+): (?P<component>\S+) \S+ done in \S+$`)
)

// stepsDone is when the apply reported the last control-plane step done.
func stepsDone(lines []line, host string) (time.Duration, error) {
	var last time.Duration
	for _, c := range controlPlane {
		at, ok := stepTime(lines, stepDoneRE, host, c)
		if !ok {
			return 0, fmt.Errorf("the apply output has no %q line for %s on %s", "done in", c, host)
		}
		last = max(last, at)
	}
	return last, nil
}

func stepTime(lines []line, re *regexp.Regexp, host, component string) (time.Duration, bool) {
	for _, l := range lines {
		m := re.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		if m[re.SubexpIndex("host")] == host && m[re.SubexpIndex("component")] == component {
			return l.at, true
		}
	}
	return 0, false
}

// timeline is where an apply's time went, per step, since its start.
type timeline struct {
	plan  time.Duration // the first step started
	steps []stepTimes
}

type stepTimes struct {
	component string
	start     time.Duration // the apply started the step
	started   time.Duration // the agent started the process (0: not in its log)
	healthy   time.Duration // the agent's first passing probe
	done      time.Duration // the step passed its health gate
}

var agentLogRE = regexp.MustCompile(`^time=(\S+) level=\S+ msg=(started|healthy) component=(\S+)`)

// newTimeline combines the apply's progress lines with the agent's log.
func newTimeline(lines []line, agentLog string, start time.Time) (timeline, error) {
	var t timeline
	for _, l := range lines {
		m := stepStartRE.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		if len(t.steps) == 0 {
			t.plan = l.at
		}
		s := stepTimes{component: m[1], start: l.at}
		s.done, _ = stepTime(lines, stepDoneRE, m[2], m[1])
		t.steps = append(t.steps, s)
	}
	if len(t.steps) == 0 {
		return t, errors.New("the apply output has no step lines")
	}
	f, err := os.Open(agentLog)
	if err != nil {
		return t, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := agentLogRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			return t, fmt.Errorf("%s: %w", agentLog, err)
		}
		for i := range t.steps {
			s := &t.steps[i]
			if s.component != m[3] {
				continue
			}
			// The first of each: a later restart would not be part of
			// bringing the cluster up.
			if m[2] == "started" && s.started == 0 {
				s.started = at.Sub(start)
			}
			if m[2] == "healthy" && s.healthy == 0 {
				s.healthy = at.Sub(start)
			}
		}
	}
	return t, sc.Err()
}

func (t timeline) print(w io.Writer) {
	fmt.Fprintf(w, "        plan until the first step %s; seconds since the apply started (process started, first passing probe: the agent's log):\n", benchkit.Secs(t.plan))
	fmt.Fprintf(w, "        %-24s %6s %8s %8s %6s\n", "step", "start", "process", "healthy", "done")
	for _, s := range t.steps {
		fmt.Fprintf(w, "        %-24s %6s %8s %8s %6s\n", s.component, benchkit.Secs(s.start), benchkit.Secs(s.started), benchkit.Secs(s.healthy), benchkit.Secs(s.done))
	}
}

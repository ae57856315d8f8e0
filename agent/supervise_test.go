package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStartFromUnitAndRestartAfterKill(t *testing.T) {
	e := newTestEnv(t)
	u := sleeper("web", `echo "FOO=$FOO"`, "pwd", "ulimit -n")
	u.Env = map[string]string{"FOO": "bar"}
	u.Limits.NOFILE = 4321
	e.install(u, 1)
	e.runAgent()

	st := e.waitFor("web", "healthy", healthyRunning)
	if st.Generation != 1 || st.Version != "1.0" || st.Restarts != 0 || st.Adopted {
		t.Fatalf("first start: %+v", st)
	}
	// Own session and process group, so signals to the agent's group and
	// the end of an SSH session never reach it.
	ps, err := readProcStat(st.PID)
	if err != nil || ps.PGID != st.PID {
		t.Fatalf("pid %d: pgid %d (err %v), want its own group", st.PID, ps.PGID, err)
	}
	if sid, _ := unix.Getsid(st.PID); sid != st.PID {
		t.Fatalf("pid %d: session %d, want its own", st.PID, sid)
	}
	rec, ok, err := readPIDRecord(e.p.PIDFile("web"))
	if err != nil || !ok || rec.PID != st.PID || rec.StartTime != ps.StartTime || rec.Generation != 1 || rec.UnitHash != st.UnitHash {
		t.Fatalf("pid record %+v (ok %v, err %v) does not describe pid %d start %d", rec, ok, err, st.PID, ps.StartTime)
	}
	e.waitFor("web", "logged", func(ComponentStatus) bool { return strings.Contains(e.readLog("web"), "web up") })
	log := e.readLog("web")
	for _, want := range []string{"FOO=bar", e.p.GenerationDir("web", 1) + "\n", "\n4321\n", "starting generation 1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st2 := e.waitFor("web", "restarted", func(s ComponentStatus) bool { return healthyRunning(s) && s.PID != st.PID })
	if st2.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", st2.Restarts)
	}
	if st2.LastExit == nil || st2.LastExit.Signal != "SIGKILL" || st2.LastExit.Code != -1 {
		t.Errorf("last exit = %+v, want SIGKILL", st2.LastExit)
	}
	if !strings.Contains(e.readLog("web"), fmt.Sprintf("pid %d exited: signal: killed", st.PID)) {
		t.Errorf("log does not record the exit:\n%s", e.readLog("web"))
	}
}

func TestBackoffGrowsWhileCrashing(t *testing.T) {
	e := newTestEnv(t)
	u := sleeper("crash")
	u.Args = []string{"-c", "echo crashing; exit 3"}
	e.install(u, 1)
	e.runAgent(func(o *Options) { o.BackoffBase = 100 * time.Millisecond; o.BackoffMax = 400 * time.Millisecond })

	st := e.waitFor("crash", "restarted 3 times", func(s ComponentStatus) bool { return s.Restarts >= 3 && s.State == StateBackoff })
	if st.LastExit == nil || st.LastExit.Code != 3 || st.LastExit.Reason != "exit status 3" {
		t.Fatalf("last exit %+v, want exit status 3", st.LastExit)
	}
	if st.NextStart == nil || !st.NextStart.After(st.LastExit.Time) {
		t.Fatalf("next start %v not after the exit %v", st.NextStart, st.LastExit.Time)
	}
	for i, want := range []time.Duration{100, 200, 400, 400, 400} {
		if got := backoffDelay(100*time.Millisecond, 400*time.Millisecond, i); got != want*time.Millisecond {
			t.Errorf("backoffDelay(%d) = %v, want %v", i, got, want*time.Millisecond)
		}
	}
	if got := backoffDelay(time.Second, 30*time.Second, 100); got != 30*time.Second {
		t.Errorf("backoffDelay(100) = %v, want the 30s cap", got)
	}
}

func TestAdoptAfterAgentKilled(t *testing.T) {
	e := newTestEnv(t)
	e.install(sleeper("etcd"), 1)
	agent1 := e.spawnAgent()
	st := e.waitFor("etcd", "healthy", healthyRunning)

	// kill -9 the agent: the component must not notice.
	if err := agent1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for alive(agent1.Process.Pid) {
		time.Sleep(10 * time.Millisecond)
	}
	if !alive(st.PID) {
		t.Fatalf("component pid %d died with the agent", st.PID)
	}

	e.spawnAgent()
	st2 := e.waitFor("etcd", "adopted and healthy", healthyRunning)
	if st2.PID != st.PID || !st2.Adopted || st2.Restarts != 0 {
		t.Fatalf("after agent restart: pid %d adopted %v restarts %d; want pid %d adopted, 0 restarts", st2.PID, st2.Adopted, st2.Restarts, st.PID)
	}
	if !st2.Since.Equal(*st.Since) {
		t.Errorf("since changed from %v to %v", st.Since, st2.Since)
	}

	// The new agent is not the parent, yet it notices the exit and restarts.
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st3 := e.waitFor("etcd", "restarted", func(s ComponentStatus) bool { return healthyRunning(s) && s.PID != st.PID })
	if st3.Restarts != 1 || st3.Adopted {
		t.Fatalf("restart of an adopted process: restarts %d adopted %v", st3.Restarts, st3.Adopted)
	}
	if st3.LastExit == nil || !strings.Contains(st3.LastExit.Reason, "adopted") {
		t.Errorf("last exit %+v", st3.LastExit)
	}
}

func TestReloadRestartsOnlyWhatChanged(t *testing.T) {
	e := newTestEnv(t)
	a, b, c := sleeper("a"), sleeper("b"), sleeper("c")
	e.install(a, 1)
	e.install(b, 1)
	e.writeGen(c, 1, map[string]string{"config.yaml": "x: 1\n"})
	e.setCurrent("c", 1)
	e.runAgent()
	pids := map[string]int{}
	for _, n := range []string{"a", "b", "c"} {
		pids[n] = e.waitFor(n, "healthy", healthyRunning).PID
	}

	// Nothing changed: nothing restarts.
	resp, err := e.client.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range resp.Changes {
		if ch.Action != ActionUnchanged {
			t.Errorf("no-op reload: %+v", ch)
		}
	}

	// b: new generation. c: a file of its generation edited in place.
	b.Version = "2.0"
	e.install(b, 2)
	if err := os.WriteFile(filepath.Join(e.p.GenerationDir("c", 1), "config.yaml"), []byte("x: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err = e.client.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Change{}
	for _, ch := range resp.Changes {
		got[ch.Name] = ch
	}
	if got["a"].Action != ActionUnchanged || got["b"].Action != ActionRestart || got["b"].FromGeneration != 1 || got["b"].Generation != 2 || got["c"].Action != ActionRestart {
		t.Fatalf("changes: %+v", resp.Changes)
	}
	if st := e.status("a"); st.PID != pids["a"] || st.Restarts != 0 {
		t.Errorf("a was touched: %+v", st)
	}
	stb := e.waitFor("b", "healthy on generation 2", func(s ComponentStatus) bool { return healthyRunning(s) && s.Generation == 2 })
	if stb.PID == pids["b"] || stb.Restarts != 1 || stb.Version != "2.0" || alive(pids["b"]) {
		t.Errorf("b after switch: %+v (old pid %d alive %v)", stb, pids["b"], alive(pids["b"]))
	}
	if st := e.waitFor("c", "healthy", healthyRunning); st.PID == pids["c"] {
		t.Errorf("c not restarted after its config changed")
	}

	// Rollback is the same move: point back and reload.
	e.setCurrent("b", 1)
	if _, err := e.client.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.waitFor("b", "back on generation 1", func(s ComponentStatus) bool { return healthyRunning(s) && s.Generation == 1 && s.Version == "1.0" })

	// a's current link removed: a stops and its record goes.
	if err := os.Remove(e.p.CurrentLink("a")); err != nil {
		t.Fatal(err)
	}
	resp, err = e.client.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Changes) != 3 || resp.Changes[0].Name != "a" || resp.Changes[0].Action != ActionStop {
		t.Fatalf("changes after removing a: %+v", resp.Changes)
	}
	if alive(pids["a"]) {
		t.Errorf("a (pid %d) still running", pids["a"])
	}
	if _, err := os.Stat(e.p.PIDFile("a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a's pid record still there: %v", err)
	}
	if st := e.status("a"); st.Name != "" {
		t.Errorf("a still in status: %+v", st)
	}

	// A broken new generation keeps the old one running and says why.
	dir := e.p.GenerationDir("b", 3)
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, UnitFile), []byte(`{"name":"b","exec":"relative","health":{"type":"none"}}`), 0o644)
	e.setCurrent("b", 3)
	pidB := e.status("b").PID
	resp, err = e.client.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "must be an absolute path") {
		t.Fatalf("reload of a broken unit: err %v", err)
	}
	if st := e.status("b"); st.PID != pidB || st.Generation != 1 || !strings.Contains(st.Error, "absolute path") {
		t.Errorf("b after a broken generation: %+v", st)
	}
}

func TestStopStartRestartAndStopTimeout(t *testing.T) {
	e := newTestEnv(t)
	u := sleeper("stubborn", `trap "echo got TERM" TERM`)
	u.Args = []string{"-c", `trap "echo ignoring TERM" TERM; echo up; while true; do sleep 0.05; done`}
	u.StopTimeout = Duration(300 * time.Millisecond)
	e.install(u, 1)
	e.install(sleeper("quiet"), 1)
	e.runAgent()
	st := e.waitFor("stubborn", "healthy", healthyRunning)

	resp, err := e.client.Restart(context.Background(), "stubborn")
	if err != nil {
		t.Fatal(err)
	}
	after := resp.Components[0]
	if after.PID == st.PID || after.Restarts != 1 || alive(st.PID) {
		t.Fatalf("restart: %+v (old pid %d alive %v)", after, st.PID, alive(st.PID))
	}
	if after.LastExit == nil || !strings.Contains(after.LastExit.Reason, "SIGKILL after the 300ms stop timeout") {
		t.Errorf("last exit %+v, want a kill after the stop timeout", after.LastExit)
	}

	q := e.waitFor("quiet", "healthy", healthyRunning)
	if _, err := e.client.Stop(context.Background(), "quiet"); err != nil {
		t.Fatal(err)
	}
	if st := e.status("quiet"); st.State != StateStopped || st.PID != 0 || alive(q.PID) {
		t.Fatalf("after stop: %+v", st)
	}
	if st := e.status("quiet"); st.LastExit == nil || st.LastExit.Signal != "SIGTERM" {
		t.Errorf("stop used %+v, want SIGTERM", st.LastExit)
	}
	if _, err := e.client.Restart(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), `unknown component "nope" (configured: quiet, stubborn)`) {
		t.Errorf("restart of an unknown component: %v", err)
	}
	if _, err := e.client.Start(context.Background(), "quiet"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("quiet", "running again", healthyRunning)
}

func TestStoppedComponentStaysStoppedAcrossAgents(t *testing.T) {
	e := newTestEnv(t)
	e.install(sleeper("kubelet"), 1)
	agent1 := e.spawnAgent()
	e.waitFor("kubelet", "healthy", healthyRunning)
	if _, err := e.client.Stop(context.Background(), "kubelet"); err != nil {
		t.Fatal(err)
	}
	agent1.Process.Signal(syscall.SIGTERM)
	for alive(agent1.Process.Pid) {
		time.Sleep(10 * time.Millisecond)
	}
	e.spawnAgent()
	if st := e.status("kubelet"); st.State != StateStopped {
		t.Fatalf("new agent: %+v, want stopped", st)
	}
	// A new generation means apply wants it running.
	e.install(sleeper("kubelet"), 2)
	if _, err := e.client.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.waitFor("kubelet", "running generation 2", func(s ComponentStatus) bool { return healthyRunning(s) && s.Generation == 2 })
}

func TestAfterOrdering(t *testing.T) {
	e := newTestEnv(t)
	marker := filepath.Join(e.dir, "containerd-ready")
	containerd := sleeper("containerd")
	containerd.Health = Health{Type: HealthExec, Command: []string{"/bin/test", "-f", marker}, Interval: Duration(50 * time.Millisecond)}
	kubelet := sleeper("kubelet")
	kubelet.After = []string{"containerd", "not-on-this-host"}
	e.install(containerd, 1)
	e.install(kubelet, 1)
	e.runAgent()

	st := e.waitFor("kubelet", "waiting for containerd", func(s ComponentStatus) bool { return len(s.WaitingFor) > 0 })
	if st.PID != 0 || st.State != StateStarting || strings.Join(st.WaitingFor, ",") != "containerd" {
		t.Fatalf("kubelet before containerd is healthy: %+v", st)
	}
	cd := e.waitFor("containerd", "probed", func(s ComponentStatus) bool { return s.LastProbe != nil })
	if cd.PID == 0 || cd.Healthy || !strings.Contains(cd.ProbeError, "exit status 1") {
		t.Fatalf("containerd: %+v", cd)
	}
	if st := e.status("kubelet"); st.PID != 0 {
		t.Fatalf("kubelet started before containerd is healthy: %+v", st)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.waitFor("kubelet", "started after containerd", healthyRunning)
}

func TestAgentStartUpgradeKeepsComponents(t *testing.T) {
	e := newTestEnv(t)
	e.install(sleeper("apiserver"), 1)
	// Two "releases" of the agent binary: the test binary and a copy with
	// one more byte (a different sha256, the same program).
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := filepath.Join(e.dir, "clusterctl-v1"), filepath.Join(e.dir, "clusterctl-v2")
	os.WriteFile(v1, self, 0o755)
	os.WriteFile(v2, append(self, 0), 0o755)
	pj := fmt.Sprintf(`{"ConfigRoot":%q,"RunDir":%q,"LogDir":%q}`, e.p.ConfigRoot, e.p.RunDir, e.p.LogDir)
	opts := func(exe string) StartOptions {
		return StartOptions{Paths: e.p, Exe: exe, Args: []string{"-test.run=^$"}, Env: []string{envRunAgent + "=" + pj}, Mode: ModeDetached}
	}
	t.Cleanup(func() { StopAgent(context.Background(), e.p, filepath.Join(e.dir, "no.service")) })

	ctx := context.Background()
	r1, err := Start(ctx, opts(v1))
	if err != nil || r1.Action != "started" || r1.Mode != ModeDetached {
		t.Fatalf("first start: %+v, %v", r1, err)
	}
	if sid, _ := unix.Getsid(r1.PID); sid != r1.PID {
		t.Errorf("detached agent pid %d is in session %d, want its own", r1.PID, sid)
	}
	st := e.waitFor("apiserver", "healthy", healthyRunning)

	again, err := Start(ctx, opts(v1))
	if err != nil || again.Action != "none" || again.PID != r1.PID {
		t.Fatalf("second start of the same binary: %+v, %v", again, err)
	}

	r2, err := Start(ctx, opts(v2))
	if err != nil || r2.Action != "upgraded" || r2.PID == r1.PID {
		t.Fatalf("upgrade: %+v, %v", r2, err)
	}
	if alive(r1.PID) {
		t.Errorf("old agent pid %d still running", r1.PID)
	}
	info, err := e.client.Ping(ctx)
	if err != nil || info.Exe != v2 {
		t.Fatalf("ping after upgrade: %+v, %v", info, err)
	}
	st2 := e.waitFor("apiserver", "adopted", healthyRunning)
	if st2.PID != st.PID || st2.Restarts != 0 || !st2.Adopted {
		t.Fatalf("upgrade restarted the component: before %+v after %+v", st, st2)
	}
	if b, _ := os.ReadFile(e.p.AgentLog()); !strings.Contains(string(b), "adopted") {
		t.Errorf("agent.log:\n%s", b)
	}
	// A second agent on the same folders refuses to run.
	err = New(fastOptions(e.p)).Run(ctx)
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second agent: %v, want ErrAlreadyRunning", err)
	}
}

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHostLease: two spec folders (two state folders) for the same hosts.
// Two applies started at once: one runs, the other fails within seconds
// naming the first. The first is killed with SIGKILL: an apply from the
// other folder is refused until `force-unlock` from that folder, then runs
// at once. Killed again, its lease expires by itself (the time is logged).
// Last, state.json removed: the next apply keeps the hosts' lineage, and
// every backup made before is still there byte for byte.
func TestHostLease(t *testing.T) {
	cluster, err := os.ReadFile(filepath.Join("..", "..", "examples", "lab", "cluster.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, "10.241.0.0/24", 1, 0, string(cluster))
	const cp = "10.241.0.11"
	dirs := []string{l.Dir, copySpec(t, l.Dir)}

	// Both at once.
	procs := []*bgRun{startApply(t, dirs[0]), startApply(t, dirs[1])}
	first := make(chan int, 2)
	for i, p := range procs {
		go func() { p.wait(); first <- i }()
	}
	loser := <-first
	winner := 1 - loser
	took := time.Since(procs[loser].start)
	out := procs[loser].output()
	t.Logf("the second apply failed after %s:\n%s", took.Round(100*time.Millisecond), out)
	id := leaseID(t, l, cp)
	for _, want := range []string{"is locked by", "run ID " + id, `"apply"`, "expires in", "clusterctl force-unlock " + id} {
		if !strings.Contains(out, want) {
			t.Errorf("the refused apply does not say %q", want)
		}
	}
	if took > 30*time.Second { // the issue asks for 5 s; the machine is shared, so only a gross failure fails
		t.Errorf("the refused apply took %s", took)
	}
	if procs[winner].exited() {
		t.Fatalf("the first apply ended too: %s", procs[winner].output())
	}

	// kill -9: the next apply from the other folder is refused, then
	// force-unlock from that folder lets it run at once.
	procs[winner].kill(t)
	if out, err := l.run("-chdir="+dirs[loser], "apply", "-auto-approve"); err == nil || !strings.Contains(out, "run ID "+id) {
		t.Fatalf("apply after kill -9, before the lease expired: %v\n%s", err, out)
	}
	out = l.mustRun("-chdir="+dirs[loser], "force-unlock", id)
	if !strings.Contains(out, "Released the host lease on cp-1") {
		t.Errorf("force-unlock:\n%s", out)
	}
	l.mustRun("-chdir="+dirs[loser], "apply", "-auto-approve")
	if out, err := l.ssh(cp, "ls -A /var/lib/clusterctl/lease"); strings.Contains(out, "lease.json") {
		t.Errorf("the lease is still on the host after apply: %v %s", err, out)
	}

	// Killed again: its lease expires by itself. The killed run's local
	// lock is taken over (same machine, process gone).
	p := startApply(t, dirs[winner])
	eventually(t, 2*time.Minute, "the apply takes the host lease", func() error {
		_, err := l.ssh(cp, "test -f /var/lib/clusterctl/lease/lease.json")
		return err
	})
	p.kill(t)
	killed := time.Now()
	id = leaseID(t, l, cp)
	if out, err := l.spec("plan"); err != nil || !strings.Contains(out, "Warning: a run is under way") || !strings.Contains(out, id) {
		t.Errorf("plan while a lease is held: %v\n%s", err, out)
	}
	// The lease expired between the start of the last refused attempt and
	// the start of the one that proceeded (the attempts are a second or
	// two apart; the successful one then runs the whole apply).
	var refused, proceeded time.Duration
	for {
		at := time.Since(killed)
		out, err := l.run("-chdir="+dirs[loser], "apply", "-auto-approve")
		if err == nil {
			proceeded = at
			break
		}
		if !strings.Contains(out, "is locked by") || time.Since(killed) > 2*time.Minute {
			t.Fatalf("apply while waiting for the lease to expire: %v\n%s", err, out)
		}
		refused = at
		time.Sleep(time.Second)
	}
	t.Logf("a killed run's lease expired between %s and %s after the kill (TTL 20 s after its last renewal)",
		refused.Round(100*time.Millisecond), proceeded.Round(100*time.Millisecond))

	// state.json lost: the hosts' lineage is kept, no backup is lost.
	store := filepath.Join(dirs[loser], ".clusterctl")
	lineage := func() (string, string) {
		b, err := os.ReadFile(filepath.Join(store, "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`"lineage": "([^"]+)"`).FindSubmatch(b)
		s := regexp.MustCompile(`"serial": (\d+)`).FindSubmatch(b)
		if m == nil || s == nil {
			t.Fatalf("no lineage or serial in state.json:\n%s", b)
		}
		return string(m[1]), string(s[1])
	}
	was, serial := lineage()
	before := files(t, filepath.Join(store, "backups"))
	if err := os.Remove(filepath.Join(store, "state.json")); err != nil {
		t.Fatal(err)
	}
	out = l.mustRun("-chdir="+dirs[loser], "apply", "-auto-approve")
	now, nserial := lineage()
	t.Logf("lineage %s serial %s before; %s serial %s after the rebuild", was, serial, now, nserial)
	if now != was {
		t.Errorf("the rebuilt state has lineage %s, the hosts' was %s:\n%s", now, was, out)
	}
	after := files(t, filepath.Join(store, "backups"))
	for name, b := range before {
		if after[name] != b {
			t.Errorf("backups/%s changed or went away", name)
		}
	}
	if out := l.mustRun("-chdir="+dirs[loser], "plan"); !strings.Contains(out, "No changes.") {
		t.Errorf("plan after the rebuild:\n%s", out)
	}
}

// copySpec copies the top-level files of a lab's spec folder (spec, key,
// known_hosts) into a new folder: the same hosts, another state folder.
func copySpec(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, _ := e.Info()
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// leaseID reads the run ID of the lease on a host.
func leaseID(t *testing.T, l *Lab, addr string) string {
	t.Helper()
	out := l.mustSSH(addr, "cat /var/lib/clusterctl/lease/lease.json")
	m := regexp.MustCompile(`"id":"([A-Za-z0-9._-]+)"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no run ID in the lease: %s", out)
	}
	return m[1]
}

func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// bgRun is a clusterctl apply running in the background.
type bgRun struct {
	cmd   *exec.Cmd
	start time.Time
	mu    sync.Mutex
	out   bytes.Buffer
	done  chan struct{}
}

func (r *bgRun) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.Write(p)
}

func (r *bgRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

func startApply(t *testing.T, dir string) *bgRun {
	t.Helper()
	r := &bgRun{cmd: exec.Command(binary, "-chdir="+dir, "apply", "-auto-approve"), done: make(chan struct{})}
	r.cmd.Stdout, r.cmd.Stderr = r, r
	r.start = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
	return r
}

func (r *bgRun) wait() { <-r.done }

func (r *bgRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL, as kill -9 does.
func (r *bgRun) kill(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-r.done
}

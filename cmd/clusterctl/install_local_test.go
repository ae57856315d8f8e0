package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/internal/localhost"
)

// The installer against a local host: its layout under a temporary root,
// the agent this test binary (running clusterctl), started detached. No
// root, no SSH, no bundle. It lives here because the agent is clusterctl.
type localInstall struct {
	t   *testing.T
	h   *localhost.Host
	in  *components.Installer
	ac  components.AgentClient
	l   components.Layout
	src string // artifact sources
}

func newLocalInstall(t *testing.T) *localInstall {
	t.Helper()
	root := t.TempDir()
	h := &localhost.Host{HostName: "local", Dir: root, Env: []string{envRunMain + "=1"}}
	li := &localInstall{t: t, h: h, ac: components.AgentClient{H: h}, l: components.LayoutOf(h), src: t.TempDir(),
		in: &components.Installer{Cluster: "demo", GateTimeout: 3 * time.Second, KeepGenerations: 1}}
	bin, err := components.LocalAgentBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if resp, err := li.ac.Status(context.Background()); err == nil {
			for _, c := range resp.Components {
				if c.PID > 0 {
					syscall.Kill(-c.PID, syscall.SIGKILL)
				}
			}
		}
		li.ac.StopAgent(context.Background())
		if t.Failed() {
			b, _ := os.ReadFile(li.l.Agent().AgentLog())
			t.Logf("agent.log:\n%s", b)
		}
	})
	if err := li.in.InstallAgent(context.Background(), h, components.AgentDesired("local", "127.0.0.1", bin)); err != nil {
		t.Fatal(err)
	}
	return li
}

// web is version v of a component with one artifact, one shared file and
// one generation file; a broken one never passes its probe.
func (li *localInstall) web(v string, broken bool) components.Desired {
	li.t.Helper()
	local := filepath.Join(li.src, "web-"+v)
	data := []byte("web binary " + v + "\n")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		li.t.Fatal(err)
	}
	shared := components.File{Path: "/etc/kubernetes/web.conf", Data: []byte("shared " + v + "\n"), Mode: 0o600, Sensitive: true}
	u := agent.Unit{Name: "web", Version: v, Exec: "/bin/sh", Args: []string{"-c", "echo web " + v + " up; exec sleep 300"},
		Health:      agent.Health{Type: agent.HealthNone, Interval: agent.Duration(50 * time.Millisecond)},
		StopTimeout: agent.Duration(2 * time.Second)}
	if broken {
		u.Health = agent.Health{Type: agent.HealthExec, Command: []string{"/bin/sh", "-c", "echo probe says no >&2; exit 1"},
			Interval: agent.Duration(50 * time.Millisecond), Timeout: agent.Duration(time.Second)}
	}
	return components.Desired{Component: "web", Host: "local", Address: "127.0.0.1", Version: v,
		Artifacts: []components.Artifact{{Component: "web", Version: v, Name: "web", Local: local,
			SHA256: fmt.Sprintf("%x", sha256.Sum256(data)), Size: int64(len(data)), Dest: "/opt/clusterctl/pkg/web/" + v + "/web", Mode: 0o755}},
		Shared: []components.File{shared},
		Config: []components.File{{Path: "web.yaml", Data: []byte("version: " + v + "\n"), Mode: 0o644}},
		Unit:   u}
}

func (li *localInstall) installed() (components.Installed, []byte) {
	li.t.Helper()
	b, err := os.ReadFile(li.l.Path(components.InstalledFile))
	if err != nil {
		li.t.Fatal(err)
	}
	inst, err := components.ParseInstalled("local", b)
	if err != nil {
		li.t.Fatal(err)
	}
	return inst, b
}

func (li *localInstall) current() *components.InstalledComponent {
	inst, _ := li.installed()
	ic, ok := inst.Components["web"]
	if !ok {
		return nil
	}
	return &ic
}

// running is web's generation and PID as the agent sees them.
func (li *localInstall) running() (int, int) {
	li.t.Helper()
	resp, err := li.ac.Status(context.Background())
	if err != nil {
		li.t.Fatal(err)
	}
	for _, c := range resp.Components {
		if c.Name == "web" {
			return c.Generation, c.PID
		}
	}
	li.t.Fatalf("the agent does not run web: %+v", resp.Components)
	return 0, 0
}

// folders are the generation folders of web on the host, and where current points.
func (li *localInstall) folders() ([]string, string) {
	li.t.Helper()
	dir := li.l.Path(filepath.Join(components.ConfigRoot, "web"))
	ents, err := os.ReadDir(dir)
	if err != nil {
		li.t.Fatal(err)
	}
	var gens []string
	for _, e := range ents {
		if e.Name() != "current" {
			gens = append(gens, e.Name())
		}
	}
	link, _ := os.Readlink(filepath.Join(dir, "current"))
	return gens, link
}

func (li *localInstall) install(d components.Desired) error {
	return li.in.Install(context.Background(), li.h, d, li.current())
}

func TestInstallerOnALocalHost(t *testing.T) {
	li := newLocalInstall(t)
	ctx := context.Background()

	// Generation 1, then 2: numbered in order, the files at their host
	// paths under the root, installed.json recording the host paths.
	if err := li.install(li.web("1.0", false)); err != nil {
		t.Fatal(err)
	}
	if err := li.install(li.web("2.0", false)); err != nil {
		t.Fatal(err)
	}
	ic := li.current()
	if ic.Number != 2 || ic.Version != "2.0" || len(ic.Previous) != 1 || ic.Previous[0].Number != 1 {
		t.Fatalf("after two installs: %+v", ic)
	}
	if g, _ := li.running(); g != 2 {
		t.Fatalf("the agent runs generation %d, want 2", g)
	}
	for _, p := range []string{"/opt/clusterctl/pkg/web/2.0/web", "/etc/kubernetes/web.conf", "/etc/clusterctl/web/2/web.yaml", "/etc/clusterctl/web/2/unit.json"} {
		if _, ok := ic.Files[p]; !ok {
			t.Errorf("installed.json does not record %s: %v", p, ic.Files)
		}
		if _, err := os.Stat(li.l.Path(p)); err != nil {
			t.Errorf("%s is not under the root: %v", p, err)
		}
	}
	if st, err := os.Stat(li.l.Path("/etc/kubernetes/web.conf")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("shared file mode: %v %v", st, err)
	}

	// A generation that fails its gate is rolled back to the one before,
	// which is gated again; installed.json does not change.
	err := li.install(li.web("3.0", true))
	var ge *components.GateError
	if !errors.As(err, &ge) || ge.Generation != 3 || ge.RolledBackTo != 2 || ge.RollbackErr != nil {
		t.Fatalf("broken 3.0: %v", err)
	}
	if !strings.Contains(ge.Output, "probe says no") {
		t.Errorf("the gate report does not carry the probe's error:\n%s", ge.Output)
	}
	if _, link := li.folders(); link != "2" {
		t.Errorf("current -> %s after the failed gate, want 2", link)
	}
	if ic := li.current(); ic.Number != 2 {
		t.Errorf("installed.json names generation %d after the failed gate", ic.Number)
	}

	// A run killed after switching to generation 4 but before recording it:
	// installed.json still names 2. The next run reuses 4 (same files)
	// without restarting the component, and prunes what it keeps no more
	// (1, and 3 that failed) — one earlier generation is kept.
	_, before := li.installed()
	if err := li.install(li.web("4.0", false)); err != nil {
		t.Fatal(err)
	}
	_, pid := li.running()
	if err := li.h.WriteFile(ctx, li.l.Path(components.InstalledFile), before, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := li.install(li.web("4.0", false)); err != nil {
		t.Fatal(err)
	}
	g, pid2 := li.running()
	if g != 4 || pid2 != pid {
		t.Errorf("after the rerun the agent runs generation %d (pid %d), want generation 4 still pid %d", g, pid2, pid)
	}
	ic = li.current()
	if ic.Number != 4 || len(ic.Previous) != 1 || ic.Previous[0].Number != 2 {
		t.Errorf("installed.json after the rerun: generation %d, previous %+v", ic.Number, ic.Previous)
	}
	if gens, link := li.folders(); !slices.Equal(gens, []string{"2", "4"}) || link != "4" {
		t.Errorf("generation folders %v, current -> %s; want [2 4], 4", gens, link)
	}

	// Drift: nothing at first; a shared file edited by hand and a removed
	// artifact show up, named by their host paths.
	_, raw := li.installed()
	drift := func() []string {
		t.Helper()
		_, objs, err := components.Observe(ctx, li.h, raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.Name == "web" {
				return o.Drift
			}
		}
		t.Fatal("no web object")
		return nil
	}
	if d := drift(); len(d) != 0 {
		t.Errorf("drift right after install: %v", d)
	}
	os.WriteFile(li.l.Path("/etc/kubernetes/web.conf"), []byte("edited\n"), 0o600)
	os.Remove(li.l.Path("/opt/clusterctl/pkg/web/4.0/web"))
	d := drift()
	if len(d) != 2 || !strings.HasPrefix(d[0], "/etc/kubernetes/web.conf was edited") || d[1] != "/opt/clusterctl/pkg/web/4.0/web is missing" {
		t.Errorf("drift: %q", d)
	}

	// Rollback goes to the kept generation and swaps the two in the record.
	got, err := li.in.Rollback(ctx, li.h, "web", *li.current())
	if err != nil {
		t.Fatal(err)
	}
	ic = li.current()
	if got.Number != 2 || ic.Number != 2 || ic.Previous[0].Number != 4 {
		t.Errorf("rollback: to %d, installed.json %d previous %+v", got.Number, ic.Number, ic.Previous)
	}
	if g, _ := li.running(); g != 2 {
		t.Errorf("the agent runs generation %d after the rollback", g)
	}

	// Remove stops it and forgets it.
	if err := li.in.Remove(ctx, li.h, "web"); err != nil {
		t.Fatal(err)
	}
	if li.current() != nil {
		t.Error("installed.json still records web")
	}
	if _, err := os.Stat(li.l.Path("/etc/clusterctl/web")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("web's configuration folder is still there: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/components"
)

// callHost is a components.Host on this machine whose commands are
// `clusterctl agent call` lines: it splits the line with sh, as a host's
// shell would, and runs the call in process against the agent's folders.
type callHost struct {
	t     *testing.T
	flags []string
	calls []string
}

func (h *callHost) Name() string { return "local" }
func (h *callHost) Root() string { return "" }

func (h *callHost) Run(ctx context.Context, cmd string) ([]byte, error) {
	words, err := exec.CommandContext(ctx, "sh", "-c", `printf '%s\0' `+cmd).Output()
	if err != nil {
		return nil, err
	}
	args := strings.Split(strings.TrimSuffix(string(words), "\x00"), "\x00")
	if len(args) != 4 || args[0] != components.AgentBinary || args[1] != "agent" || args[2] != "call" {
		h.t.Fatalf("not an agent call: %q", args)
	}
	h.calls = append(h.calls, args[3])
	var out bytes.Buffer
	err = Run(ctx, append(args[1:], h.flags...), &out, &bytes.Buffer{})
	return out.Bytes(), err
}

func (h *callHost) Upload(context.Context, string, string, string, fs.FileMode) (int64, error) {
	return 0, errors.New("no uploads")
}
func (h *callHost) WriteFile(context.Context, string, []byte, fs.FileMode) error {
	return errors.New("no writes")
}

// TestAgentCall drives a real agent with the workstation's typed client
// through the host end of `agent call`.
func TestAgentCall(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent signals process groups and sets resource limits: run as root (CI does)")
	}
	dir := t.TempDir()
	p := agent.Paths{ConfigRoot: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "log")}
	flags := []string{"--config-root", p.ConfigRoot, "--run-dir", p.RunDir, "--log-dir", p.LogDir}
	writeGen := func(gen int, script string) {
		unit, err := agent.EncodeUnit(agent.Unit{Name: "web", Version: "1.0", Exec: "/bin/sh", Args: []string{"-c", script},
			Health: agent.Health{Type: agent.HealthNone, Interval: agent.Duration(50 * time.Millisecond)}})
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(p.GenerationDir("web", gen), 0o755)
		os.WriteFile(filepath.Join(p.GenerationDir("web", gen), agent.UnitFile), unit, 0o644)
	}
	writeGen(1, "echo web one; exec sleep 300")
	writeGen(2, "echo web two is broken; exit 3")
	os.Symlink("1", p.CurrentLink("web"))

	h := &callHost{t: t, flags: flags}
	c := components.AgentClient{H: h}
	ctx := context.Background()

	// No agent yet: the error says so.
	if _, err := c.Status(ctx); !errors.Is(err, agent.ErrNotRunning) || !strings.Contains(err.Error(), "local: agent status") {
		t.Fatalf("status without an agent: %v", err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, append([]string{"agent", "run"}, flags...), &bytes.Buffer{}, &bytes.Buffer{})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		b, _ := os.ReadFile(p.PIDFile("web"))
		var rec struct{ PID int }
		if json.Unmarshal(b, &rec) == nil && rec.PID > 0 {
			syscall.Kill(-rec.PID, syscall.SIGKILL)
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Status(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent never answered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if report, err := c.WaitHealthy(ctx, "web", 1, 10*time.Second); err != nil {
		t.Fatalf("gate on generation 1: %v\n%s", err, report)
	}
	resp, err := c.Status(ctx)
	if err != nil || len(resp.Components) != 1 || resp.Components[0].Name != "web" || resp.Components[0].Generation != 1 || resp.Agent.Paths.RunDir != p.RunDir {
		t.Fatalf("status: %+v %v", resp, err)
	}

	// A switch to a generation that crashes: the gate fails with the
	// component's state and its last log lines, and switching back works.
	if err := c.Switch(ctx, "web", 2); err != nil {
		t.Fatal(err)
	}
	if link, _ := os.Readlink(p.CurrentLink("web")); link != "2" {
		t.Errorf("current link %q after the switch, want 2", link)
	}
	report, err := c.WaitHealthy(ctx, "web", 2, 2*time.Second)
	if err == nil || !strings.Contains(report, "web: generation 2") || !strings.Contains(report, "last log lines of web:") || !strings.Contains(report, "web two is broken") {
		t.Fatalf("failing gate: %v\n%s", err, report)
	}
	if err := c.Switch(ctx, "web", 1); err != nil {
		t.Fatal(err)
	}
	if report, err := c.WaitHealthy(ctx, "web", 1, 10*time.Second); err != nil {
		t.Fatalf("gate after switching back: %v\n%s", err, report)
	}
	if err := c.Switch(ctx, "web", 7); err == nil || !strings.Contains(err.Error(), "generation 7") {
		t.Errorf("switch to a generation that is not there: %v", err)
	}
	if err := c.Switch(ctx, "../etc", 1); err == nil {
		t.Error("switch accepted a name that is not a component's")
	}

	// Unlink: the agent stops it.
	if err := c.Unlink(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p.CurrentLink("web")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("current link still there: %v", err)
	}
	if resp, err := c.Status(ctx); err != nil || len(resp.Components) != 0 {
		t.Errorf("status after unlink: %+v %v", resp.Components, err)
	}
	// A Node operation without a kubeconfig fails with the reason, through
	// the same protocol.
	if err := components.DeleteNode(ctx, h, "w3"); err == nil || !strings.Contains(err.Error(), "delete node w3") {
		t.Errorf("delete-node without a kubeconfig: %v", err)
	}
	for _, call := range h.calls {
		var req agent.Request
		if err := json.Unmarshal([]byte(call), &req); err != nil || req.Op == "" {
			t.Errorf("a call that is not a request: %q", call)
		}
	}
}

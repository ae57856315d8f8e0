package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/agent"
)

// TestAgentCommands runs "clusterctl agent run" and drives it with the
// "agent ctl" commands apply, status and logs use over SSH.
func TestAgentCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the agent signals process groups and sets resource limits: run as root (CI does)")
	}
	dir := t.TempDir()
	p := agent.Paths{ConfigRoot: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "log")}
	flags := []string{"--config-root", p.ConfigRoot, "--run-dir", p.RunDir, "--log-dir", p.LogDir}
	unit, err := agent.EncodeUnit(agent.Unit{
		Name: "web", Version: "1.0", Exec: "/bin/sh", Args: []string{"-c", "echo web up; exec sleep 300"},
		Health: agent.Health{Type: agent.HealthNone, Interval: agent.Duration(50 * time.Millisecond)},
	})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(p.GenerationDir("web", 1), 0o755)
	os.WriteFile(filepath.Join(p.GenerationDir("web", 1), agent.UnitFile), unit, 0o644)
	os.Symlink("1", p.CurrentLink("web"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var agentErr bytes.Buffer
	go func() { done <- Run(ctx, append([]string{"agent", "run"}, flags...), &bytes.Buffer{}, &agentErr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent run: %v\n%s", err, agentErr.String())
		}
		// The agent leaves components running by design; the test does not.
		b, _ := os.ReadFile(p.PIDFile("web"))
		var rec struct{ PID int }
		if json.Unmarshal(b, &rec) == nil && rec.PID > 0 {
			syscall.Kill(-rec.PID, syscall.SIGKILL)
		}
	})

	ctl := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := Run(context.Background(), append(append([]string{"agent", "ctl"}, args...), flags...), &out, &errb)
		return out.String(), errb.String(), err
	}

	// The machine form: -json is the control protocol's Response.
	deadline := time.Now().Add(10 * time.Second)
	var resp agent.Response
	for {
		out, _, err := ctl("status", "-json")
		if err == nil {
			resp = agent.Response{}
			if jerr := json.Unmarshal([]byte(out), &resp); jerr != nil {
				t.Fatalf("status -json: %v\n%s", jerr, out)
			}
			if len(resp.Components) == 1 && resp.Components[0].Healthy {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent never reported web healthy: %v %+v", err, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	web := resp.Components[0]
	if !resp.OK || resp.Agent == nil || resp.Agent.Paths.RunDir != p.RunDir || web.Name != "web" || web.Generation != 1 || web.PID == 0 {
		t.Fatalf("status -json: %+v", resp)
	}

	out, _, err := ctl("wait-healthy", "web", "--generation", "1", "--successes", "2", "--timeout", "10s")
	if err != nil || !strings.HasPrefix(out, "web generation 1 healthy") {
		t.Fatalf("wait-healthy: %q %v", out, err)
	}

	out, _, err = ctl("status")
	lines := strings.Split(out, "\n")
	if err != nil || !strings.HasPrefix(lines[0], "COMPONENT  GEN  VERSION  STATE    PID") || !strings.HasPrefix(lines[1], "web        1    1.0      running  ") {
		t.Fatalf("status:\n%s%v", out, err)
	}

	out, _, err = ctl("logs", "web", "-n", "1")
	if err != nil || out != "web up\n" {
		t.Fatalf("logs -n 1: %q %v", out, err)
	}

	out, _, err = ctl("restart", "web")
	if err != nil || !strings.Contains(out, "web        restart") {
		t.Fatalf("restart:\n%s%v", out, err)
	}
	out, _, err = ctl("reload")
	if err != nil || !strings.Contains(out, "web        unchanged  1") {
		t.Fatalf("reload:\n%s%v", out, err)
	}

	// A failing gate: exit status 1, the reason and the log tail.
	out, errOut, err := ctl("wait-healthy", "web", "--generation", "2", "--timeout", "200ms")
	if exitCode(err, &bytes.Buffer{}) != 1 || !strings.Contains(err.Error(), "runs generation 1, not 2") || !strings.Contains(errOut, "last log lines of web:\n") || !strings.Contains(errOut, "  web up\n") {
		t.Fatalf("failing gate: out %q stderr %q err %v", out, errOut, err)
	}
	out, _, err = ctl("wait-healthy", "web", "--generation", "2", "--timeout", "200ms", "-json")
	resp = agent.Response{}
	if exitCode(err, &bytes.Buffer{}) != 1 || json.Unmarshal([]byte(out), &resp) != nil || resp.OK || len(resp.Log) == 0 {
		t.Fatalf("failing gate -json: %q %v", out, err)
	}

	// No agent: a clear error naming the remedy.
	var o, e bytes.Buffer
	err = Run(context.Background(), []string{"agent", "ctl", "status", "--run-dir", filepath.Join(dir, "none")}, &o, &e)
	if !errors.Is(err, agent.ErrNotRunning) || !strings.Contains(err.Error(), "clusterctl agent start") {
		t.Fatalf("status without an agent: %v", err)
	}
}

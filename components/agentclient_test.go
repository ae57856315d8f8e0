package components

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/plan"
)

// scriptedHost answers every command with the same output and error, and
// keeps the command lines.
type scriptedHost struct {
	out   string
	err   error
	lines []string
}

func (h *scriptedHost) Name() string { return "cp-1" }
func (h *scriptedHost) Root() string { return "" }
func (h *scriptedHost) Run(_ context.Context, cmd string) ([]byte, error) {
	h.lines = append(h.lines, cmd)
	return []byte(h.out), h.err
}
func (h *scriptedHost) Upload(context.Context, string, string, string, fs.FileMode) (int64, error) {
	return 0, errors.New("no uploads")
}
func (h *scriptedHost) WriteFile(context.Context, string, []byte, fs.FileMode) error {
	return errors.New("no writes")
}

func response(t *testing.T, r agent.Response) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// The one command line: the binary, "agent call" and the request as one
// quoted JSON argument.
func TestAgentClientCommandLine(t *testing.T) {
	h := &scriptedHost{out: response(t, agent.Response{OK: true})}
	if _, err := (AgentClient{h}).WaitHealthy(context.Background(), "etcd", 5, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	want := `/opt/clusterctl/bin/clusterctl agent call '{"op":"wait-healthy","name":"etcd","generation":5,"timeout":"1m30s"}'`
	if len(h.lines) != 1 || h.lines[0] != want {
		t.Fatalf("command lines %q, want %q", h.lines, want)
	}
	// A quote in a value stays inside the one argument.
	h.lines = nil
	if err := SyncNode(context.Background(), h, "n1", NodeMeta{Labels: map[string]string{"a": "it's"}}); err != nil {
		t.Fatal(err)
	}
	if len(h.lines) != 1 || !strings.HasSuffix(h.lines[0], `"labels":{"a":"it'\''s"}}'`) ||
		!strings.Contains(h.lines[0], `"op":"node-meta","kubeconfig":"/etc/kubernetes/admin.conf","node":"n1"`) {
		t.Fatalf("node-meta command line %q", h.lines)
	}
}

func TestAgentClientErrors(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name       string
		h          *scriptedHost
		notRunning bool
		want       []string
	}{
		{"nothing answers on the socket",
			&scriptedHost{out: `{"ok":false,"error":"agent not running: dial unix /run/clusterctl/agent.sock: connect: no such file or directory","not_running":true}` + "\n"},
			true, []string{"cp-1: agent status: agent not running: dial unix"}},
		{"no binary", &scriptedHost{err: errors.New("exit status 127: sh: 1: /opt/clusterctl/bin/clusterctl: not found")},
			true, []string{"cp-1: agent status: agent not running: no agent response: exit status 127: sh: 1: /opt/clusterctl/bin/clusterctl: not found"}},
		{"an older clusterctl prints its help", &scriptedHost{out: "The on-host supervisor of the cluster components (runs on each host)\n\nUsage:\n  clusterctl agent [command]\n"},
			true, []string{"cp-1: agent status: ", "does not know 'agent call' (an older clusterctl?)", `"The on-host supervisor`}},
		{"prints nothing", &scriptedHost{}, true, []string{"it printed nothing"}},
		{"the agent refuses", &scriptedHost{out: response(t, agent.Response{Error: "unknown component \"x\""})},
			false, []string{`cp-1: agent status: unknown component "x"`}},
	} {
		_, err := AgentClient{tt.h}.Status(ctx)
		if err == nil || errors.Is(err, agent.ErrNotRunning) != tt.notRunning {
			t.Errorf("%s: %v (not running: %v, want %v)", tt.name, err, errors.Is(err, agent.ErrNotRunning), tt.notRunning)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tt.name, err, w)
			}
		}
		if strings.Count(err.Error(), "agent not running") > 1 {
			t.Errorf("%s: %q says it twice", tt.name, err)
		}
	}
}

// A failed gate's report keeps what the agent said: the reason with the
// last probe error, the component's state and its last log lines.
func TestAgentClientGateReport(t *testing.T) {
	h := &scriptedHost{out: response(t, agent.Response{
		Error:      "etcd generation 5 not healthy after 2m0s: state starting, 0/3 passing probes in a row; last probe: connection refused",
		Components: []agent.ComponentStatus{{Name: "etcd", Generation: 5, State: agent.StateStarting, Restarts: 1, ProbeError: "connection refused"}},
		Log:        []string{"etcd: listening", "etcd: bad flag"},
	})}
	report, err := AgentClient{h}.WaitHealthy(context.Background(), "etcd", 5, 2*time.Minute)
	want := "cp-1: agent wait-healthy: etcd generation 5 not healthy after 2m0s: state starting, 0/3 passing probes in a row; last probe: connection refused\n" +
		"etcd: generation 5 starting, 1 restarts; last probe: connection refused\n" +
		"last log lines of etcd:\n  etcd: listening\n  etcd: bad flag"
	if err == nil || report != want {
		t.Fatalf("report:\n%s\nwant:\n%s\n(err %v)", report, want, err)
	}
}

// CheckRunning: an agent that does not answer is drift on the agent; a
// stopped or missing component is drift on it.
func TestCheckRunningThroughTheClient(t *testing.T) {
	inst := Installed{Components: map[string]InstalledComponent{AgentComponent: {}, "etcd": {}, "kubelet": {}}}
	objs := func() []plan.Object {
		return []plan.Object{{Name: AgentComponent}, {Name: "etcd"}, {Name: "kubelet"}}
	}
	for _, h := range []*scriptedHost{
		{out: `{"ok":false,"error":"agent not running: dial unix","not_running":true}`},
		{out: "Usage:\n  clusterctl agent [command]\n"},
	} {
		o := objs()
		if err := CheckRunning(context.Background(), h, inst, o); err != nil {
			t.Fatal(err)
		}
		if strings.Join(o[0].Drift, "|") != "the agent is not running" || len(o[1].Drift)+len(o[2].Drift) != 0 {
			t.Errorf("%q: drift %q %q %q", h.out, o[0].Drift, o[1].Drift, o[2].Drift)
		}
	}
	h := &scriptedHost{out: response(t, agent.Response{OK: true, Components: []agent.ComponentStatus{{Name: "etcd", State: agent.StateStopped, Restarts: 2}}})}
	o := objs()
	if err := CheckRunning(context.Background(), h, inst, o); err != nil {
		t.Fatal(err)
	}
	if len(o[0].Drift) != 0 || strings.Join(o[1].Drift, "|") != "not running on the host (stopped, 2 restarts)" || strings.Join(o[2].Drift, "|") != "the agent does not run it" {
		t.Errorf("drift %q %q %q", o[0].Drift, o[1].Drift, o[2].Drift)
	}
	if len(h.lines) != 1 || !strings.HasSuffix(h.lines[0], ` agent call '{"op":"status"}'`) {
		t.Errorf("command lines %q", h.lines)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/spec"
)

// envRunMain makes the test binary run clusterctl itself instead of the
// tests: "agent start" re-executes its own binary as "agent run", which is
// the test binary here.
const envRunMain = "CLUSTERCTL_CMD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(exitCode(err, os.Stderr))
	}
	os.Exit(m.Run())
}

// lineHost is a components.Host whose Run executes the "agent call"
// command line it is given through clusterctl's Go entry point, with the
// agent's folders of a test. It refuses any other command.
type lineHost struct {
	t     *testing.T
	p     agent.Paths
	mu    sync.Mutex
	lines []string
}

var _ components.Host = (*lineHost)(nil)

func (h *lineHost) Name() string { return "h1" }
func (h *lineHost) Root() string { return "" }

func (h *lineHost) Run(ctx context.Context, line string) ([]byte, error) {
	h.mu.Lock()
	h.lines = append(h.lines, line)
	h.mu.Unlock()
	words, err := shellWords(line)
	if err != nil {
		h.t.Errorf("command line %q: %v", line, err)
		return nil, err
	}
	if len(words) != 4 || words[0] != components.AgentBinary || words[1] != "agent" || words[2] != "call" {
		h.t.Errorf("not one agent call: %q", line)
		return nil, fmt.Errorf("unexpected command %q", line)
	}
	var out, errb bytes.Buffer
	args := append(words[1:], "--config-root", h.p.ConfigRoot, "--run-dir", h.p.RunDir, "--log-dir", h.p.LogDir)
	if err := Run(ctx, args, &out, &errb); err != nil {
		return out.Bytes(), fmt.Errorf("%w: %s", err, errb.String())
	}
	return out.Bytes(), nil
}

func (h *lineHost) Upload(context.Context, string, string, string, fs.FileMode) (int64, error) {
	return 0, errors.New("no uploads")
}

func (h *lineHost) WriteFile(context.Context, string, []byte, fs.FileMode) error {
	return errors.New("no writes")
}

// shellWords splits a POSIX shell line of plain and single-quoted words
// (what provision.Quote makes), refusing anything else.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted:
			if c == '\'' {
				quoted = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\'':
			quoted, in = true, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case strings.IndexByte("|&;<>()$`\"*?[]#~\t\n", c) >= 0:
			return nil, fmt.Errorf("shell syntax %q at %d", c, i)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

func testPaths(t *testing.T) agent.Paths {
	dir := t.TempDir()
	p := agent.Paths{ConfigRoot: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "log")}
	if err := os.MkdirAll(p.ConfigRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeUnit writes generation gen of a sleeper unit "web" whose probe
// passes unless failProbe.
func writeUnit(t *testing.T, p agent.Paths, gen int, failProbe bool) {
	t.Helper()
	u := agent.Unit{
		Name: "web", Version: fmt.Sprintf("1.%d", gen), Exec: "/bin/sh",
		Args:        []string{"-c", fmt.Sprintf("echo web %d up; exec sleep 300", gen)},
		Health:      agent.Health{Type: agent.HealthNone, Interval: agent.Duration(50 * time.Millisecond)},
		StopTimeout: agent.Duration(2 * time.Second),
	}
	if failProbe {
		u.Health = agent.Health{Type: agent.HealthExec, Command: []string{"/bin/sh", "-c", "echo probe says no >&2; exit 1"},
			Interval: agent.Duration(50 * time.Millisecond), Timeout: agent.Duration(time.Second)}
	}
	b, err := agent.EncodeUnit(u)
	if err != nil {
		t.Fatal(err)
	}
	dir := p.GenerationDir("web", gen)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, agent.UnitFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// runTestAgent runs an agent in this process until the test ends, and
// kills what it leaves running then.
func runTestAgent(t *testing.T, p agent.Paths) {
	t.Helper()
	a := agent.New(agent.Options{
		Paths: p, Version: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		BackoffBase: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond, BackoffReset: 2 * time.Second,
		AfterTimeout: 10 * time.Second, PollEvery: 50 * time.Millisecond, RotateEvery: time.Hour,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		b, _ := os.ReadFile(p.PIDFile("web"))
		var rec struct{ PID int }
		if json.Unmarshal(b, &rec) == nil && rec.PID > 0 {
			syscall.Kill(-rec.PID, syscall.SIGKILL)
		}
	})
	cl := agent.Client{Socket: p.Socket()}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := cl.Ping(context.Background()); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("agent does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// call runs "clusterctl agent call REQUEST" and decodes its one line.
func call(t *testing.T, p agent.Paths, req string) agent.Response {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"agent", "call", req, "--config-root", p.ConfigRoot, "--run-dir", p.RunDir, "--log-dir", p.LogDir}, &out, &errb)
	if err != nil {
		t.Fatalf("agent call %s: exit %d: %v %s", req, exitCode(err, io.Discard), err, errb.String())
	}
	if n := strings.Count(out.String(), "\n"); n != 1 || !strings.HasSuffix(out.String(), "\n") {
		t.Fatalf("agent call %s printed %d lines: %q", req, n, out.String())
	}
	var resp agent.Response
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatalf("agent call %s: %v in %q", req, err, out.String())
	}
	return resp
}

// The call command: every answer is one JSON line and exit 0; supervisor
// operations go to the socket, the rest is done in the command.
func TestAgentCallDispatch(t *testing.T) {
	p := testPaths(t)

	for _, tt := range []struct{ req, want string }{
		{`{"op":`, "bad request"},
		{`{"op":"status"} {"op":"ping"}`, "more than one JSON value"},
		{`{}`, "no op"},
		{`{"op":"frobnicate"}`, `unknown op "frobnicate"`},
		{`{"op":"switch","name":"../x","generation":1}`, "x"},
		{`{"op":"node-meta","kubeconfig":"/nonexistent"}`, "node-meta: no node given"},
	} {
		resp := call(t, p, tt.req)
		if resp.OK || !strings.Contains(resp.Error, tt.want) || resp.NotRunning {
			t.Errorf("%s: %+v, want an error containing %q", tt.req, resp, tt.want)
		}
	}
	// Nothing answers yet.
	resp := call(t, p, `{"op":"status"}`)
	if resp.OK || !resp.NotRunning || !errors.Is(resp.Err(), agent.ErrNotRunning) || !strings.Contains(resp.Error, "agent not running") {
		t.Fatalf("status without an agent: %+v", resp)
	}

	writeUnit(t, p, 1, false)
	resp = call(t, p, `{"op":"switch","name":"web","generation":1}`)
	if !resp.NotRunning {
		t.Fatalf("switch without an agent: %+v", resp)
	}
	if l, _ := os.Readlink(p.CurrentLink("web")); l != "1" {
		t.Fatalf("current -> %q after switch, want 1", l)
	}
	runTestAgent(t, p)

	resp = call(t, p, `{"op":"ping"}`)
	if !resp.OK || resp.Agent == nil || resp.Agent.PID != os.Getpid() || resp.Agent.Paths.RunDir != p.RunDir || resp.Agent.Version != "test" {
		t.Fatalf("ping: %+v", resp)
	}
	resp = call(t, p, `{"op":"wait-healthy","name":"web","generation":1,"timeout":"10s"}`)
	if !resp.OK || len(resp.Components) != 1 || resp.Components[0].Generation != 1 || resp.Components[0].Version != "1.1" || resp.Components[0].PID == 0 {
		t.Fatalf("wait-healthy: %+v", resp)
	}
	resp = call(t, p, `{"op":"status"}`)
	if !resp.OK || len(resp.Components) != 1 || resp.Components[0].Name != "web" || resp.Components[0].State != agent.StateRunning {
		t.Fatalf("status: %+v", resp)
	}
	resp = call(t, p, `{"op":"reload"}`)
	if !resp.OK || len(resp.Changes) != 1 || resp.Changes[0].Action != agent.ActionUnchanged {
		t.Fatalf("reload: %+v", resp)
	}
	resp = call(t, p, `{"op":"restart","name":"web"}`)
	if !resp.OK || len(resp.Changes) != 1 || resp.Changes[0].Action != agent.ActionRestart {
		t.Fatalf("restart: %+v", resp)
	}
	resp = call(t, p, `{"op":"restart","name":"nope"}`)
	if resp.OK || resp.NotRunning || !strings.Contains(resp.Error, "nope") {
		t.Fatalf("restart of an unknown component: %+v", resp)
	}
}

// AgentClient through a Host that runs its command lines: every method
// makes one "agent call" and comes back with typed values.
func TestAgentClientGateLogsUnlink(t *testing.T) {
	p := testPaths(t)
	h := &lineHost{t: t, p: p}
	ac := components.AgentClient{H: h}
	ctx := context.Background()

	// No agent: ErrNotRunning, naming the host and the operation.
	_, err := ac.Status(ctx)
	if !errors.Is(err, agent.ErrNotRunning) || !strings.HasPrefix(err.Error(), "h1: agent status: agent not running") {
		t.Fatalf("status without an agent: %v", err)
	}

	writeUnit(t, p, 1, false)
	writeUnit(t, p, 2, true) // runs, never passes its probe
	if err := ac.Switch(ctx, "web", 1); !errors.Is(err, agent.ErrNotRunning) {
		t.Fatalf("switch without an agent: %v", err)
	}
	runTestAgent(t, p)
	if report, err := ac.WaitHealthy(ctx, "web", 1, 10*time.Second); err != nil {
		t.Fatalf("gate of generation 1: %v\n%s", err, report)
	}
	info, err := ac.Ping(ctx)
	if err != nil || info.PID != os.Getpid() || info.Paths.ConfigRoot != p.ConfigRoot {
		t.Fatalf("ping: %+v %v", info, err)
	}

	// A failing gate keeps the agent's report: the reason, the last probe
	// error and the last log lines.
	if err := ac.Switch(ctx, "web", 2); err != nil {
		t.Fatal(err)
	}
	report, err := ac.WaitHealthy(ctx, "web", 2, 700*time.Millisecond)
	if err == nil {
		t.Fatal("gate of generation 2 passed")
	}
	for _, want := range []string{"h1: agent wait-healthy: web generation 2 not healthy after 700ms", "last probe: ", "probe says no",
		"web: generation 2 starting", "last log lines of web:\n  ", "  web 2 up"} {
		if !strings.Contains(report, want) {
			t.Errorf("gate report lacks %q:\n%s", want, report)
		}
	}
	// Back to 1, as a rollback does.
	if err := ac.Switch(ctx, "web", 1); err != nil {
		t.Fatal(err)
	}
	if report, err := ac.WaitHealthy(ctx, "web", 1, 10*time.Second); err != nil {
		t.Fatalf("gate after switching back: %v\n%s", err, report)
	}
	resp, err := ac.Status(ctx)
	if err != nil || len(resp.Components) != 1 || resp.Components[0].Generation != 1 || !resp.Components[0].Healthy {
		t.Fatalf("status after switching back: %+v %v", resp, err)
	}
	// A generation that is not there: refused, the link stays.
	if err := ac.Switch(ctx, "web", 9); err == nil || !strings.Contains(err.Error(), "generation 9") {
		t.Fatalf("switch to a missing generation: %v", err)
	}
	if l, _ := os.Readlink(p.CurrentLink("web")); l != "1" {
		t.Fatalf("current -> %q, want 1", l)
	}

	// Logs: the last lines, then what is appended, then after a rotation.
	tail, off, err := ac.Logs(ctx, "web", 100)
	if err != nil || len(tail) == 0 || !strings.Contains(strings.Join(tail, "\n"), "web 1 up") {
		t.Fatalf("logs: %q %v", tail, err)
	}
	if st, _ := os.Stat(p.LogFile("web")); off != st.Size() {
		t.Fatalf("logs offset %d, file size %d", off, st.Size())
	}
	appendFile(t, p.LogFile("web"), "extra 1\nextra 2\npart")
	more, off2, err := ac.LogsAfter(ctx, "web", off)
	if err != nil || strings.Join(more, "|") != "extra 1|extra 2" || off2 != off+int64(len("extra 1\nextra 2\n")) {
		t.Fatalf("logs after %d: %q %d %v", off, more, off2, err)
	}
	if err := os.Truncate(p.LogFile("web"), 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p.LogFile("web"), "fresh\n")
	more, off3, err := ac.LogsAfter(ctx, "web", off2)
	if err != nil || strings.Join(more, "|") != "fresh" || off3 != 6 {
		t.Fatalf("logs after a rotation: %q %d %v", more, off3, err)
	}
	var out bytes.Buffer
	if err := followLogs(ctx, ac, "web", 1, false, time.Millisecond, &out); err != nil || out.String() != "fresh\n" {
		t.Fatalf("followLogs: %q %v", out.String(), err)
	}
	if _, _, err := ac.Logs(ctx, "nope", 10); err == nil || !strings.Contains(err.Error(), "logs of nope") {
		t.Fatalf("logs of a missing component: %v", err)
	}

	// Unlink: the agent stops it and forgets it.
	if err := ac.Unlink(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p.CurrentLink("web")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("current link after unlink: %v", err)
	}
	resp, err = ac.Status(ctx)
	if err != nil || len(resp.Components) != 0 {
		t.Fatalf("status after unlink: %+v %v", resp, err)
	}

	for _, l := range h.lines {
		if !strings.HasPrefix(l, components.AgentBinary+" agent call '{\"op\":") {
			t.Errorf("command line %q is not an agent call", l)
		}
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// start-agent and stop-agent: a detached agent is started from this
// binary (the test binary, running clusterctl), found running the second
// time, and stopped; the component it adopted keeps running.
func TestAgentClientStartStopAgent(t *testing.T) {
	if agent.SystemdRunning() {
		t.Skip("systemd is PID 1: start-agent would install the systemd service")
	}
	if _, err := os.Stat(agent.DefaultSystemdUnitPath); err == nil {
		t.Skip(agent.DefaultSystemdUnitPath + " exists: stop-agent would stop that agent")
	}
	t.Setenv(envRunMain, "1") // the detached agent is this binary
	p := testPaths(t)
	h := &lineHost{t: t, p: p}
	ac := components.AgentClient{H: h}
	ctx := context.Background()
	writeUnit(t, p, 1, false)
	if err := os.Symlink("1", p.CurrentLink("web")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ac.StopAgent(context.Background())
		b, _ := os.ReadFile(p.PIDFile("web"))
		var rec struct{ PID int }
		if json.Unmarshal(b, &rec) == nil && rec.PID > 0 {
			syscall.Kill(-rec.PID, syscall.SIGKILL)
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.AgentLog())
			t.Logf("agent.log:\n%s", b)
		}
	})

	if err := ac.StopAgent(ctx); !errors.Is(err, agent.ErrNotRunning) {
		t.Fatalf("stop-agent without an agent: %v", err)
	}
	first := call(t, p, `{"op":"start-agent","mode":"detached"}`)
	if !first.OK || first.Start == nil || first.Start.Action != "started" || first.Start.Mode != agent.ModeDetached || first.Start.PID <= 0 || first.Start.PID == os.Getpid() {
		t.Fatalf("start-agent: %+v", first)
	}
	if err := ac.StartAgent(ctx); err != nil {
		t.Fatal(err)
	}
	again := call(t, p, `{"op":"start-agent","mode":"detached"}`)
	if !again.OK || again.Start.Action != "none" || again.Start.PID != first.Start.PID {
		t.Fatalf("second start-agent: %+v, want none from pid %d", again, first.Start.PID)
	}
	if report, err := ac.WaitHealthy(ctx, "web", 1, 10*time.Second); err != nil {
		t.Fatalf("gate: %v\n%s", err, report)
	}
	resp, err := ac.Status(ctx)
	if err != nil || resp.Agent.PID != first.Start.PID || len(resp.Components) != 1 {
		t.Fatalf("status: %+v %v", resp, err)
	}
	webPID := resp.Components[0].PID

	if err := ac.StopAgent(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Status(ctx); !errors.Is(err, agent.ErrNotRunning) {
		t.Fatalf("status after stop-agent: %v", err)
	}
	if syscall.Kill(webPID, 0) != nil {
		t.Fatalf("web (pid %d) did not outlive the agent", webPID)
	}
	// A new agent adopts it.
	if err := ac.StartAgent(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err = ac.Status(ctx)
	if err != nil || len(resp.Components) != 1 || resp.Components[0].PID != webPID || !resp.Components[0].Adopted {
		t.Fatalf("status after a new start: %+v %v", resp, err)
	}
}

// The Node operations through a control plane's admin kubeconfig: the
// call command patches the Node on the API server.
func TestAgentCallNodeOps(t *testing.T) {
	var mu sync.Mutex
	var patches []string
	node := map[string]any{"metadata": map[string]any{"name": "n1", "resourceVersion": "3", "labels": map[string]any{"kubernetes.io/hostname": "n1"}}, "spec": map[string]any{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/nodes/n1" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Method == http.MethodPatch {
			patches = append(patches, string(body))
			var patch map[string]any
			if err := json.Unmarshal(body, &patch); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			mergePatch(node, patch)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(node)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()

	p := testPaths(t)
	certPEM, keyPEM := clientCert(t)
	admin := filepath.Join(p.ConfigRoot, "admin.conf")
	kc := pki.Kubeconfig(pki.KubeconfigData{ClusterName: "t", Server: srv.URL,
		CACert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), UserName: "admin", ClientCert: certPEM, ClientKey: keyPEM})
	if err := os.WriteFile(admin, kc, 0o600); err != nil {
		t.Fatal(err)
	}

	req, _ := json.Marshal(agent.Request{Op: agent.OpNodeMeta, Kubeconfig: admin, Node: "n1",
		Labels: map[string]string{"node-role.kubernetes.io/worker": ""}, Taints: []agent.Taint{{Key: "k", Value: "v", Effect: "NoSchedule"}}})
	resp := call(t, p, string(req))
	if !resp.OK || !resp.Changed {
		t.Fatalf("node-meta: %+v", resp)
	}
	req, _ = json.Marshal(agent.Request{Op: agent.OpUncordon, Kubeconfig: admin, Node: "n1"})
	if resp := call(t, p, string(req)); !resp.OK {
		t.Fatalf("uncordon: %+v", resp)
	}
	mu.Lock()
	if len(patches) != 2 || !strings.Contains(patches[0], `"node-role.kubernetes.io/worker":""`) || !strings.Contains(patches[0], `"effect":"NoSchedule"`) ||
		!strings.Contains(patches[1], `"unschedulable":false`) {
		t.Fatalf("patches: %q", patches)
	}
	mu.Unlock()
	req, _ = json.Marshal(agent.Request{Op: agent.OpUncordon, Kubeconfig: admin, Node: "n2"})
	if resp := call(t, p, string(req)); resp.OK || !strings.Contains(resp.Error, "404") && !strings.Contains(resp.Error, "not found") {
		t.Fatalf("uncordon of a missing node: %+v", resp)
	}
	// SyncNode names the host's admin kubeconfig; this machine has none.
	if _, err := os.Stat(filepath.Join(pki.HostKubeDir, pki.KubeconfigAdmin)); err == nil {
		t.Skip("this machine has an admin kubeconfig")
	}
	err := components.SyncNode(context.Background(), &lineHost{t: t, p: p}, "n1", components.DesiredNodeMeta(spec.Host{Name: "n1"}))
	if err == nil || !strings.Contains(err.Error(), "node n1: set its labels and taints: h1: agent node-meta: ") || !strings.Contains(err.Error(), pki.HostKubeDir) {
		t.Fatalf("SyncNode with no admin kubeconfig on the host: %v", err)
	}
}

func clientCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "admin"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// mergePatch applies a JSON merge patch (RFC 7386) to doc.
func mergePatch(doc, patch map[string]any) {
	for k, v := range patch {
		pm, isMap := v.(map[string]any)
		switch {
		case v == nil:
			delete(doc, k)
		case isMap:
			dm, ok := doc[k].(map[string]any)
			if !ok {
				dm = map[string]any{}
				doc[k] = dm
			}
			mergePatch(dm, pm)
		default:
			doc[k] = v
		}
	}
}

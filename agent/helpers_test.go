package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envRunAgent makes the test binary run an agent instead of the tests: the
// tests start real agent processes from it (kill -9, adoption, upgrade).
// Its value is the JSON of the Paths.
const envRunAgent = "CLUSTERCTL_AGENT_TEST_RUN_AGENT"

func TestMain(m *testing.M) {
	if v := os.Getenv(envRunAgent); v != "" {
		var p Paths
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			fmt.Fprintln(os.Stderr, "bad", envRunAgent, err)
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		opt := fastOptions(p)
		opt.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		err := New(opt).Run(ctx)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "agent:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fastOptions shorten every delay so the tests take seconds.
func fastOptions(p Paths) Options {
	return Options{
		Paths: p, Version: "test",
		BackoffBase: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond, BackoffReset: 2 * time.Second,
		AfterTimeout: 10 * time.Second, PollEvery: 50 * time.Millisecond, RotateEvery: 50 * time.Millisecond,
	}
}

type testEnv struct {
	t      *testing.T
	dir    string
	p      Paths
	client Client
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the agent tests raise resource limits and signal process groups: run as root (CI does)")
	}
	dir := t.TempDir()
	p := Paths{ConfigRoot: filepath.Join(dir, "etc"), RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "log")}
	if err := os.MkdirAll(p.ConfigRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: dir, p: p, client: Client{Socket: p.Socket()}}
	// Registered first, so it runs last: whatever the agents left running
	// goes, and a failed test shows the agent's log.
	t.Cleanup(func() {
		names, _ := pidRecordNames(p.RunDir)
		for _, n := range names {
			if rec, ok, _ := readPIDRecord(p.PIDFile(n)); ok && sameProcessAlive(rec.PID, rec.StartTime) {
				syscall.Kill(-rec.PID, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			for _, f := range []string{filepath.Join(dir, "agent-test.log"), p.AgentLog()} {
				if b, err := os.ReadFile(f); err == nil {
					t.Logf("%s:\n%s", f, b)
				}
			}
		}
	})
	return e
}

// sleeper is a unit that prints a line and sleeps.
func sleeper(name string, extra ...string) Unit {
	script := "echo " + name + " up; exec sleep 300"
	if len(extra) > 0 {
		script = strings.Join(extra, "; ") + "; " + script
	}
	return Unit{
		Name: name, Version: "1.0", Exec: "/bin/sh", Args: []string{"-c", script},
		Health:      Health{Type: HealthNone, Interval: Duration(50 * time.Millisecond)},
		StopTimeout: Duration(2 * time.Second),
	}
}

// writeGen writes a generation folder: unit.json plus files.
func (e *testEnv) writeGen(u Unit, gen int, files map[string]string) {
	e.t.Helper()
	dir := e.p.GenerationDir(u.Name, gen)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	b, err := EncodeUnit(u)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, UnitFile), b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
}

// setCurrent flips the current link the way apply does: a new link at a
// temporary name renamed over the old one.
func (e *testEnv) setCurrent(name string, gen int) {
	e.t.Helper()
	tmp := filepath.Join(e.p.ComponentDir(name), ".current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(strconv.Itoa(gen), tmp); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.p.CurrentLink(name)); err != nil {
		e.t.Fatal(err)
	}
}

// install writes generation gen of u and makes it current.
func (e *testEnv) install(u Unit, gen int) {
	e.writeGen(u, gen, nil)
	e.setCurrent(u.Name, gen)
}

// runAgent runs an agent in this process until the test ends.
func (e *testEnv) runAgent(tweak ...func(*Options)) *Agent {
	e.t.Helper()
	opt := fastOptions(e.p)
	logf, err := os.OpenFile(filepath.Join(e.dir, "agent-test.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	opt.Logger = slog.New(slog.NewTextHandler(logf, nil))
	for _, f := range tweak {
		f(&opt)
	}
	a := New(opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("agent: %v", err)
		}
		logf.Close()
	})
	e.waitPing(done)
	return a
}

func (e *testEnv) waitPing(exited <-chan error) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.client.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case err := <-exited:
			e.t.Fatalf("agent exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("agent does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spawnAgent runs an agent as a separate process (the test binary).
func (e *testEnv) spawnAgent() *exec.Cmd {
	e.t.Helper()
	pj, _ := json.Marshal(e.p)
	logf, err := os.OpenFile(filepath.Join(e.dir, "agent-test.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRunAgent+"="+string(pj))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	e.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	e.waitPing(exited)
	return cmd
}

func (e *testEnv) status(name string) ComponentStatus {
	e.t.Helper()
	resp, err := e.client.Status(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, c := range resp.Components {
		if c.Name == name {
			return c
		}
	}
	return ComponentStatus{}
}

// waitFor polls the component's status until cond holds.
func (e *testEnv) waitFor(name, what string, cond func(ComponentStatus) bool) ComponentStatus {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := e.status(name)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			e.t.Fatalf("%s: never %s; status:\n%s", name, what, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func healthyRunning(st ComponentStatus) bool {
	return st.State == StateRunning && st.PID != 0 && st.Healthy
}

func (e *testEnv) readLog(name string) string {
	b, _ := os.ReadFile(e.p.LogFile(name))
	return string(b)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil && procState(pid) != 'Z' }

func procState(pid int) byte {
	st, err := readProcStat(pid)
	if err != nil {
		return 0
	}
	return st.State
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type testPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

func newTestPKI(t *testing.T, dir, prefix string) testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: prefix + "-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, prefix+"-"+name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(key)
		return write(cn+".crt", "CERTIFICATE", der), write(cn+".key", "EC PRIVATE KEY", kb)
	}
	p := testPKI{CA: write("ca.crt", "CERTIFICATE", caDER)}
	p.ServerCert, p.ServerKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

// buildProbeServer builds testdata/probeserver, a stand-in component.
func buildProbeServer(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "probeserver")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.Command(gobin, "build", "-o", out, "./testdata/probeserver")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build probeserver: %v\n%s", err, b)
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

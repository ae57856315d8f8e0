package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// probeServerUnit runs testdata/probeserver as a component with an HTTPS
// probe that presents the client certificate of pk.
func probeServerUnit(bin string, srv testPKI, client testPKI, port, status int) Unit {
	url := fmt.Sprintf("https://127.0.0.1:%d/health", port)
	return Unit{
		Name: "apiserver", Version: "1.31.0", Exec: bin,
		Args: []string{"-addr", fmt.Sprintf("127.0.0.1:%d", port), "-ca", srv.CA, "-cert", srv.ServerCert, "-key", srv.ServerKey, "-status", fmt.Sprint(status)},
		Health: Health{
			Type: HealthHTTPS, URL: url, CAFile: srv.CA, CertFile: client.ClientCert, KeyFile: client.ClientKey,
			Interval: Duration(100 * time.Millisecond), Timeout: Duration(time.Second),
		},
		StopTimeout: Duration(2 * time.Second),
	}
}

func TestHTTPSProbeWithClientCertificate(t *testing.T) {
	e := newTestEnv(t)
	bin := buildProbeServer(t)
	pk := newTestPKI(t, e.dir, "cluster")
	other := newTestPKI(t, e.dir, "other")
	port := freePort(t)
	u := probeServerUnit(bin, pk, pk, port, http.StatusOK)
	e.install(u, 1)
	e.runAgent()

	st := e.waitFor("apiserver", "healthy", healthyRunning)
	if st.HealthType != HealthHTTPS || st.ProbeError != "" || st.LastProbe == nil {
		t.Fatalf("status %+v", st)
	}

	// The same probe, directly: the server insists on a client
	// certificate from its CA, and the client checks the server's.
	ctx := context.Background()
	if err := Probe(ctx, u.Health); err != nil {
		t.Fatalf("probe with the right client cert: %v", err)
	}
	cases := map[string]struct {
		mod  func(*Health)
		want string
	}{
		"no client cert": {func(h *Health) { h.CertFile, h.KeyFile = "", "" }, "certificate required"},
		// Go's client offers no certificate the server's CA list rejects.
		"foreign client cert": {func(h *Health) { h.CertFile, h.KeyFile = other.ClientCert, other.ClientKey }, "certificate required"},
		"wrong server CA":     {func(h *Health) { h.CAFile = other.CA }, "certificate signed by unknown authority"},
		"missing key file":    {func(h *Health) { h.KeyFile = e.dir + "/nope.key" }, "client certificate"},
		"closed port":         {func(h *Health) { h.URL = fmt.Sprintf("https://127.0.0.1:%d/health", freePort(t)) }, "connection refused"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			h := u.Health
			c.mod(&h)
			err := Probe(ctx, h)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("probe error %v, want it to mention %q", err, c.want)
			}
		})
	}

	// A component whose probe fails is reported, not restarted.
	u2 := probeServerUnit(bin, pk, other, port, http.StatusOK)
	u2.Name = "apiserver"
	e.install(u2, 2)
	if _, err := e.client.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	bad := e.waitFor("apiserver", "unhealthy on generation 2", func(s ComponentStatus) bool {
		return s.Generation == 2 && s.PID != 0 && strings.Contains(s.ProbeError, "certificate required")
	})
	if bad.Healthy || bad.State != StateStarting || bad.Passes != 0 {
		t.Fatalf("probe with a foreign client cert: %+v", bad)
	}
	time.Sleep(300 * time.Millisecond)
	if st := e.status("apiserver"); st.PID != bad.PID || st.Restarts != bad.Restarts {
		t.Errorf("a failing probe restarted the component: %+v", st)
	}
}

func TestOtherProbes(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			http.Error(w, "etcd: no leader", http.StatusServiceUnavailable)
		}
	}))
	addr := ln.Addr().String()
	cases := []struct {
		h    Health
		want string // "" means pass
	}{
		{Health{Type: HealthTCP, Address: addr}, ""},
		{Health{Type: HealthTCP, Address: fmt.Sprintf("127.0.0.1:%d", freePort(t))}, "connection refused"},
		{Health{Type: HealthHTTP, URL: "http://" + addr + "/ok"}, ""},
		{Health{Type: HealthHTTP, URL: "http://" + addr + "/bad"}, "503 Service Unavailable: etcd: no leader"},
		{Health{Type: HealthExec, Command: []string{"/bin/sh", "-c", "exit 0"}}, ""},
		{Health{Type: HealthExec, Command: []string{"/bin/sh", "-c", "echo not ready; exit 1"}}, "exit status 1: not ready"},
		{Health{Type: HealthExec, Command: []string{"/bin/sleep", "5"}, Timeout: Duration(100 * time.Millisecond)}, "deadline exceeded"},
		{Health{Type: HealthNone}, ""},
	}
	for _, c := range cases {
		err := Probe(ctx, c.h)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %s%s%v: %v", c.h.Type, c.h.URL, c.h.Address, c.h.Command, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s %s%s%v: error %v, want %q", c.h.Type, c.h.URL, c.h.Address, c.h.Command, err, c.want)
		}
	}
}

func TestWaitHealthy(t *testing.T) {
	e := newTestEnv(t)
	bin := buildProbeServer(t)
	pk := newTestPKI(t, e.dir, "cluster")
	port := freePort(t)
	e.install(probeServerUnit(bin, pk, pk, port, http.StatusOK), 1)
	e.runAgent()
	ctx := context.Background()

	resp, err := e.client.WaitHealthy(ctx, "apiserver", 1, 3, 10*time.Second)
	if err != nil {
		t.Fatalf("gate on a healthy component: %v", err)
	}
	if st := resp.Components[0]; st.Generation != 1 || st.Passes < 3 || !st.Healthy {
		t.Fatalf("gate passed with %+v", st)
	}

	// Generation 2 answers 500: the gate fails with the probe error and the
	// component's last log lines.
	e.install(probeServerUnit(bin, pk, pk, port, http.StatusInternalServerError), 2)
	if _, err := e.client.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err = e.client.WaitHealthy(ctx, "apiserver", 2, 3, 700*time.Millisecond)
	if err == nil {
		t.Fatal("gate passed on a failing component")
	}
	for _, want := range []string{"apiserver generation 2 not healthy after 700ms", "500 Internal Server Error: status 500 for client"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("gate error %q lacks %q", err, want)
		}
	}
	if !strings.Contains(strings.Join(resp.Log, "\n"), "probeserver listening on") {
		t.Errorf("gate failure without the log tail: %q", resp.Log)
	}
	if len(resp.Components) != 1 || resp.Components[0].Generation != 2 {
		t.Errorf("gate failure status: %+v", resp.Components)
	}

	// Waiting for a generation that is not current names the mismatch.
	_, err = e.client.WaitHealthy(ctx, "apiserver", 3, 1, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "runs generation 2, not 3") {
		t.Errorf("gate on a missing generation: %v", err)
	}
	_, err = e.client.WaitHealthy(ctx, "etcd", 0, 1, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), `unknown component "etcd"`) {
		t.Errorf("gate on an unknown component: %v", err)
	}

	// Point back (rollback) and the gate passes again.
	e.setCurrent("apiserver", 1)
	if _, err := e.client.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.WaitHealthy(ctx, "apiserver", 1, 2, 10*time.Second); err != nil {
		t.Fatalf("gate after rollback: %v", err)
	}

	// A client that goes away cancels its wait; the agent stays fine.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = e.client.WaitHealthy(cctx, "apiserver", 9, 1, time.Minute)
	cancel()
	if err == nil {
		t.Fatal("wait for generation 9 returned without error")
	}
	if _, err := e.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWaitHealthyFailsFastOnACrashLoop(t *testing.T) {
	e := newTestEnv(t)
	u := Unit{Name: "apiserver", Exec: "/bin/sh", Args: []string{"-c", "echo 'bad flag --nope'; exit 1"},
		Health: Health{Type: HealthTCP, Address: fmt.Sprintf("127.0.0.1:%d", freePort(t))}}
	e.install(u, 1)
	e.runAgent()
	start := time.Now()
	resp, err := e.client.WaitHealthy(context.Background(), "apiserver", 1, 3, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "crash-looping") {
		t.Fatalf("want a crash-loop failure, got %v", err)
	}
	if time.Since(start) > 50*time.Second {
		t.Fatalf("the gate waited for its timeout instead of failing on the crash loop")
	}
	if !strings.Contains(strings.Join(resp.Log, "\n"), "bad flag --nope") {
		t.Errorf("crash-loop failure without the log tail: %q", resp.Log)
	}
}

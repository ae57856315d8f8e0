// Package e2e runs clusterctl end to end: real lab hosts (network
// namespaces with OpenSSH), the real bundle (etcd, Kubernetes, containerd),
// and kubectl from the bundle for checks. It needs root and a filled bundle
// cache; without them it skips, unless CLUSTERCTL_REQUIRE_BUNDLE=1 (CI),
// where a missing bundle fails.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// binary is the clusterctl binary built once for the package.
var binary string

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "clusterctl-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "clusterctl")
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	cmd := exec.Command("go", "build", "-o", binary, "./cmd/clusterctl")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build clusterctl: %v\n%s", err, out)
	}
	return m.Run(), nil
}

// requireEnv skips (or fails under CLUSTERCTL_REQUIRE_BUNDLE=1) when the
// machine cannot run the end-to-end tests.
func requireEnv(t *testing.T) {
	t.Helper()
	must := os.Getenv("CLUSTERCTL_REQUIRE_BUNDLE") == "1"
	skip := func(why string) {
		t.Helper()
		if must {
			t.Fatalf("cannot run end-to-end tests: %s (CLUSTERCTL_REQUIRE_BUNDLE=1)", why)
		}
		t.Skipf("skipping end-to-end test: %s", why)
	}
	if testing.Short() {
		t.Skip("skipping end-to-end test in -short mode")
	}
	if os.Geteuid() != 0 {
		skip("needs root to make lab hosts")
	}
	if _, err := os.Stat(kubectlPath(t)); err != nil {
		skip("the bundle cache has no kubectl: run `make bundle`")
	}
}

func cacheRoot() string {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "clusterctl", "artifacts")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "clusterctl", "artifacts")
}

func kubectlPath(t *testing.T) string {
	return filepath.Join(cacheRoot(), "kubectl", "1.37.2", "linux-amd64", "kubectl")
}

// Lab is a lab with a spec folder.
type Lab struct {
	t   *testing.T
	Dir string
}

// newLab makes a lab in a temp folder on subnet (one per test, so a failed
// test's leftovers never collide with the next) and removes it at cleanup.
func newLab(t *testing.T, subnet string, controlPlanes, workers int, clusterHCL string) *Lab {
	t.Helper()
	requireEnv(t)
	l := &Lab{t: t, Dir: t.TempDir()}
	t.Cleanup(func() {
		if out, err := l.run("lab", "down", "--dir", l.Dir); err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	})
	l.mustRun("lab", "up", "--dir", l.Dir, "--subnet", subnet,
		"--control-planes", fmt.Sprint(controlPlanes), "--workers", fmt.Sprint(workers))
	if err := os.WriteFile(filepath.Join(l.Dir, "cluster.hcl"), []byte(clusterHCL), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// run runs clusterctl with args and returns its combined output.
func (l *Lab) run(args ...string) (string, error) {
	return l.runCtx(context.Background(), args...)
}

func (l *Lab) runCtx(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	err := cmd.Run()
	return out.String(), err
}

func (l *Lab) mustRun(args ...string) string {
	l.t.Helper()
	out, err := l.run(args...)
	if err != nil {
		l.t.Fatalf("clusterctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// spec runs clusterctl in the lab's spec folder.
func (l *Lab) spec(args ...string) (string, error) {
	return l.run(append([]string{"-chdir=" + l.Dir}, args...)...)
}

func (l *Lab) mustSpec(args ...string) string {
	l.t.Helper()
	out, err := l.spec(args...)
	if err != nil {
		l.t.Fatalf("clusterctl -chdir=LAB %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// exitCode returns the exit code of a clusterctl run.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// ssh runs a command on a lab host with OpenSSH.
func (l *Lab) ssh(addr, command string) (string, error) {
	cmd := exec.Command("ssh", "-i", filepath.Join(l.Dir, "id_ed25519"),
		"-o", "UserKnownHostsFile="+filepath.Join(l.Dir, "known_hosts"), "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=10", "root@"+addr, command)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (l *Lab) mustSSH(addr, command string) string {
	l.t.Helper()
	out, err := l.ssh(addr, command)
	if err != nil {
		l.t.Fatalf("ssh %s %q: %v\n%s", addr, command, err, out)
	}
	return out
}

// kubeconfig writes the admin kubeconfig and returns its path.
func (l *Lab) kubeconfig() string {
	l.t.Helper()
	path := filepath.Join(l.Dir, "admin.conf")
	l.mustSpec("kubeconfig", "-o", path)
	return path
}

// kubectl runs the bundle's kubectl with the admin kubeconfig.
func (l *Lab) kubectl(args ...string) (string, error) {
	cmd := exec.Command(kubectlPath(l.t), append([]string{"--kubeconfig", filepath.Join(l.Dir, "admin.conf"), "--request-timeout=20s"}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (l *Lab) mustKubectl(args ...string) string {
	l.t.Helper()
	out, err := l.kubectl(args...)
	if err != nil {
		l.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// hostStatus mirrors `clusterctl status -json`.
type hostStatus struct {
	Host       string `json:"host"`
	Error      string `json:"error"`
	Components []struct {
		Name       string `json:"name"`
		Version    string `json:"version"`
		Generation int    `json:"generation"`
		State      string `json:"state"`
		PID        int    `json:"pid"`
		Healthy    bool   `json:"healthy"`
		Restarts   int    `json:"restarts"`
	} `json:"components"`
}

// compStatus is one component as `clusterctl status -json` reports it.
type compStatus struct {
	PID, Restarts, Generation int
	State, Version            string
	Healthy                   bool
}

// status returns component status keyed "host/component".
func (l *Lab) status(t *testing.T) map[string]compStatus {
	t.Helper()
	cmd := exec.Command(binary, "-chdir="+l.Dir, "status", "-json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var hs []hostStatus
	if jerr := json.Unmarshal(stdout.Bytes(), &hs); jerr != nil {
		t.Fatalf("status -json: %v / %v\n%s%s", err, jerr, stdout.String(), stderr.String())
	}
	m := map[string]compStatus{}
	for _, h := range hs {
		for _, c := range h.Components {
			m[h.Host+"/"+c.Name] = compStatus{c.PID, c.Restarts, c.Generation, c.State, c.Version, c.Healthy}
		}
	}
	return m
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not true within %s: %v", what, timeout, err)
}

// runJSON runs clusterctl and returns its standard output only (the
// diagnostics on standard error are dropped).
func (l *Lab) runJSON(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// parseEvents reads JSON lines.
func parseEvents(t *testing.T, out string) []map[string]any {
	t.Helper()
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		t.Fatal("no events")
	}
	return events
}

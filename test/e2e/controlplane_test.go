package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const oneControlPlane = `cluster "e2e-cp" {
  kubernetes_version = "1.37.2"
}
`

// TestControlPlaneOneHost: apply a 1-host control plane, check it with
// kubectl, then the re-apply, self-healing, drift, saved-plan and
// lost-state behaviour of issue 5.
func TestControlPlaneOneHost(t *testing.T) {
	l := newLab(t, "10.231.0.0/24", 1, 0, oneControlPlane)
	const cp = "10.231.0.11"
	l.mustSpec("apply", "-auto-approve")
	l.kubeconfig()

	if out := l.mustKubectl("get", "--raw", "/readyz"); strings.TrimSpace(out) != "ok" {
		t.Fatalf("/readyz: %q", out)
	}
	var v struct {
		Server struct {
			GitVersion string `json:"gitVersion"`
		} `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(l.mustKubectl("version", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Server.GitVersion != "v1.37.2" {
		t.Fatalf("server version %q, want v1.37.2", v.Server.GitVersion)
	}

	t.Run("reapply changes nothing", func(t *testing.T) {
		before := l.status(t)
		out := l.mustSpec("apply", "-auto-approve")
		if !strings.Contains(out, "No changes.") || strings.Contains(out, "uploaded") {
			t.Fatalf("re-apply did something:\n%s", out)
		}
		after := l.status(t)
		for k, b := range before {
			a := after[k]
			if a.PID != b.PID || a.Restarts != b.Restarts {
				t.Errorf("%s restarted by a no-change apply: pid %d→%d, restarts %d→%d", k, b.PID, a.PID, b.Restarts, a.Restarts)
			}
		}
	})

	t.Run("agent restarts a killed kube-apiserver", func(t *testing.T) {
		before := l.status(t)["cp-1/kube-apiserver"]
		l.mustSSH(cp, "kill -9 "+fmt.Sprint(before.PID))
		killed := time.Now()
		eventually(t, time.Minute, "kube-apiserver running and healthy again", func() error {
			s := l.status(t)["cp-1/kube-apiserver"]
			if s.PID == before.PID || !s.Healthy || s.State != "running" {
				return fmt.Errorf("pid %d state %s healthy %v", s.PID, s.State, s.Healthy)
			}
			if s.Restarts != before.Restarts+1 {
				return fmt.Errorf("restarts %d, want %d", s.Restarts, before.Restarts+1)
			}
			return nil
		})
		t.Logf("kube-apiserver healthy again %s after kill -9", time.Since(killed).Round(100*time.Millisecond))
	})

	t.Run("drift is planned and repaired; a stale saved plan is refused", func(t *testing.T) {
		const file = "/etc/clusterctl/kube-apiserver/current/audit-policy.yaml"
		l.mustSSH(cp, "echo '# edited by hand' >> "+file)
		out, err := l.spec("plan", "-detailed-exitcode")
		if exitCode(err) != 2 || !strings.Contains(out, "audit-policy.yaml was edited") {
			t.Fatalf("plan after a hand edit: exit %d, want 2 naming the file:\n%s", exitCode(err), out)
		}
		planFile := filepath.Join(l.Dir, "saved.plan")
		l.mustSpec("plan", "-out", planFile)
		l.mustSSH(cp, "echo '# edited again' >> "+file)
		out, err = l.spec("apply", planFile)
		if err == nil || !strings.Contains(out, "host cp-1 changed") {
			t.Fatalf("a stale saved plan was not refused with its reason:\n%s", out)
		}
		l.mustSpec("apply", "-auto-approve")
		if out, err := l.spec("plan", "-detailed-exitcode"); exitCode(err) != 0 {
			t.Fatalf("plan after the repair: exit %d\n%s", exitCode(err), out)
		}
	})

	t.Run("lost state is rebuilt from the hosts", func(t *testing.T) {
		if err := os.RemoveAll(filepath.Join(l.Dir, ".clusterctl")); err != nil {
			t.Fatal(err)
		}
		out, err := l.spec("plan", "-detailed-exitcode")
		if exitCode(err) != 0 {
			t.Fatalf("plan without local state: exit %d, want 0 (no changes)\n%s", exitCode(err), out)
		}
		if !strings.Contains(out, "restored") {
			t.Errorf("plan did not say it restored the PKI:\n%s", out)
		}
		// plan writes nothing; apply (with nothing to change on the hosts)
		// keeps the rebuilt state and PKI, so the same CA signs from now on.
		if _, err := os.Stat(filepath.Join(l.Dir, ".clusterctl", "pki", "ca.crt")); err == nil {
			t.Error("plan wrote the restored PKI; only apply should")
		}
		l.mustSpec("apply", "-auto-approve")
		for _, f := range []string{"pki/ca.crt", "pki/ca.key", "state.json"} {
			if _, err := os.Stat(filepath.Join(l.Dir, ".clusterctl", f)); err != nil {
				t.Errorf("after apply: %v", err)
			}
		}
		out = l.mustSpec("plan", "-detailed-exitcode")
		if strings.Contains(out, "restored") {
			t.Errorf("the PKI was restored again after apply saved it:\n%s", out)
		}
		l.kubeconfig()
		if out := l.mustKubectl("get", "--raw", "/readyz"); strings.TrimSpace(out) != "ok" {
			t.Errorf("/readyz with the kubeconfig from the restored PKI: %q", out)
		}
	})
}

// TestControlPlaneAfterReboot: a lab host restarted (like a reboot of a host
// without systemd) comes back with no agent; plan says so and apply brings
// the control plane back without reinstalling it.
func TestControlPlaneAfterReboot(t *testing.T) {
	l := newLab(t, "10.234.0.0/24", 1, 0, strings.ReplaceAll(oneControlPlane, "e2e-cp", "e2e-reboot"))
	l.mustSpec("apply", "-auto-approve")
	l.kubeconfig()
	l.mustRun("lab", "restart", "--dir", l.Dir, "cp-1")
	out, err := l.spec("plan", "-detailed-exitcode")
	if exitCode(err) != 2 || !strings.Contains(out, "the agent is not running") {
		t.Fatalf("plan after a reboot: exit %d, want 2 saying the agent is not running:\n%s", exitCode(err), out)
	}
	// This apply runs with -json, as CI would: one event per line, ending
	// with a summary.
	out, err = l.runJSON(t, "-chdir="+l.Dir, "apply", "-json", "-auto-approve")
	if err != nil {
		t.Fatalf("apply -json: %v\n%s", err, out)
	}
	events := parseEvents(t, out)
	last := events[len(events)-1]
	if events[0]["type"] != "plan" || last["type"] != "summary" || last["steps_done"] != float64(1) || last["bytes_uploaded"] != float64(0) {
		t.Errorf("apply -json events: first %v, last %v", events[0]["type"], last)
	}
	var agentDone bool
	for _, e := range events {
		if e["type"] == "change" && e["component"] == "agent" && e["status"] == "done" {
			agentDone = true
		}
		if e["type"] == "upload" {
			t.Errorf("bringing the agent back uploaded something: %v", e)
		}
	}
	if !agentDone {
		t.Errorf("no change event for the agent:\n%s", out)
	}
	eventually(t, 60*time.Second, "kube-apiserver ready after the reboot", func() error {
		out, err := l.kubectl("get", "--raw", "/readyz")
		if err != nil || strings.TrimSpace(out) != "ok" {
			return fmt.Errorf("%q %v", out, err)
		}
		return nil
	})
	eventually(t, 60*time.Second, "plan without changes", func() error {
		if out, err := l.spec("plan", "-detailed-exitcode"); exitCode(err) != 0 {
			return fmt.Errorf("exit %d\n%s", exitCode(err), out)
		}
		return nil
	})
}

// TestControlPlaneThreeHosts: three etcd members healthy, every API server
// ready.
func TestControlPlaneThreeHosts(t *testing.T) {
	l := newLab(t, "10.232.0.0/24", 3, 0, strings.ReplaceAll(oneControlPlane, "e2e-cp", "e2e-ha"))
	l.mustSpec("apply", "-auto-approve")
	l.kubeconfig()
	addrs := []string{"10.232.0.11", "10.232.0.12", "10.232.0.13"}
	var endpoints []string
	for _, a := range addrs {
		endpoints = append(endpoints, "https://"+a+":2379")
	}
	etcdctl := "/opt/clusterctl/pkg/etcd/3.7.3/etcdctl --cacert=/etc/kubernetes/pki/etcd/ca.crt " +
		"--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key " +
		"--endpoints=" + strings.Join(endpoints, ",")
	out := l.mustSSH(addrs[0], etcdctl+" endpoint health -w json")
	var health []struct {
		Endpoint string `json:"endpoint"`
		Health   bool   `json:"health"`
	}
	if err := json.Unmarshal([]byte(out), &health); err != nil {
		t.Fatalf("etcdctl endpoint health: %v\n%s", err, out)
	}
	if len(health) != 3 {
		t.Fatalf("want 3 etcd endpoints, got %s", out)
	}
	for _, h := range health {
		if !h.Health {
			t.Errorf("etcd %s unhealthy", h.Endpoint)
		}
	}
	members := l.mustSSH(addrs[0], etcdctl+" member list -w simple")
	if n := strings.Count(members, ", started, "); n != 3 {
		t.Errorf("want 3 started members:\n%s", members)
	}
	for _, a := range addrs {
		out, err := l.kubectl("--server", "https://"+a+":6443", "get", "--raw", "/readyz")
		if err != nil || strings.TrimSpace(out) != "ok" {
			t.Errorf("kube-apiserver on %s: /readyz %q %v", a, out, err)
		}
	}
}

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const echoApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 4
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: localhost/clusterctl-echo:v1
        imagePullPolicy: Never
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: echo}
spec:
  minAvailable: 3
  selector: {matchLabels: {app: echo}}
`

// poller hits a URL until stopped and counts the answers.
type poller struct {
	ok, total atomic.Int64
	stop      chan struct{}
	done      chan struct{}
}

func startPoller(url string) *poller {
	p := &poller{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 2 * time.Second}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			p.total.Add(1)
			resp, err := client.Get(url)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					p.ok.Add(1)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return p
}

func (p *poller) finish() (ok, total int64) {
	close(p.stop)
	<-p.done
	return p.ok.Load(), p.total.Load()
}

// TestUpgradeAndRollback: a 1.36 / etcd 3.6 cluster upgraded to 1.37 /
// etcd 3.7 by changing the spec, with a Service polled throughout; a broken
// kube-apiserver flag rolled back by its gate; `rollback kubelet`; and an
// upgrade resumed after clusterctl is killed midway.
func TestUpgradeAndRollback(t *testing.T) {
	cluster, err := os.ReadFile(filepath.Join("..", "..", "examples", "lab", "cluster.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	// Workers are drained before their kubelet changes (PodDisruptionBudget
	// respected) and uncordoned after: the Service must stay up anyway.
	withDrain := strings.Replace(string(cluster), "  service_cidr       = \"10.96.0.0/12\"\n",
		"  service_cidr       = \"10.96.0.0/12\"\n\n  upgrade {\n    drain = true\n  }\n", 1)
	if withDrain == string(cluster) {
		t.Fatal("examples/lab/cluster.hcl changed: cannot add the upgrade block")
	}
	cluster = []byte(withDrain)
	l := newLab(t, "10.233.0.0/24", 1, 2, string(cluster))
	const cp, w1 = "10.233.0.11", "10.233.0.12"
	l.mustSpec("apply", "-auto-approve", "-var", "kubernetes_version=1.36.3")
	l.kubeconfig()
	l.mustKubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")

	manifest := filepath.Join(l.Dir, "echo.yaml")
	if err := os.WriteFile(manifest, []byte(echoApp), 0o644); err != nil {
		t.Fatal(err)
	}
	l.mustKubectl("apply", "-f", manifest)
	l.mustKubectl("rollout", "status", "deployment/echo", "--timeout=180s")

	t.Run("upgrade 1.36.3 to 1.37.2 with the service polled", func(t *testing.T) {
		p := startPoller("http://" + w1 + ":30080/")
		start := time.Now()
		out := l.mustSpec("apply", "-auto-approve", "-var", "kubernetes_version=1.37.2")
		elapsed := time.Since(start)
		ok, total := p.finish()
		rate := float64(ok) / float64(max(total, 1))
		t.Logf("upgrade took %s; service answered %d of %d requests (%.2f%%) during it", elapsed.Round(time.Second), ok, total, 100*rate)
		if !strings.Contains(out, "etcd snapshot") {
			t.Errorf("no etcd snapshot before the etcd upgrade:\n%s", out)
		}
		for _, w := range []string{"worker-1", "worker-2"} {
			if !strings.Contains(out, w+": draining") {
				t.Errorf("%s was not drained before its kubelet changed:\n%s", w, out)
			}
		}
		if cordoned := l.mustKubectl("get", "nodes", "-o", "jsonpath={.items[?(@.spec.unschedulable)].metadata.name}"); strings.TrimSpace(cordoned) != "" {
			t.Errorf("nodes left cordoned after the upgrade: %s", cordoned)
		}
		if rate < 0.95 {
			t.Errorf("service availability during the upgrade %.2f%%, want at least 95%% (target 99%%)", 100*rate)
		}
		nodes := l.mustKubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.nodeInfo.kubeletVersion}{\"\\n\"}{end}")
		if strings.Count(nodes, "=v1.37.2") != 3 {
			t.Errorf("nodes after the upgrade:\n%s", nodes)
		}
		for key, s := range l.status(t) {
			want := "1.37.2"
			switch {
			case strings.HasSuffix(key, "/etcd"):
				want = "3.7.3"
			case strings.HasSuffix(key, "/coredns"):
				want = "1.14.6" // kubeadm's pin for 1.37, from 1.36's 1.14.2
			case strings.HasSuffix(key, "/metrics-server"):
				want = "0.8.0" // the same for both releases: not changed
			}
			if strings.HasSuffix(key, "/containerd") || strings.HasSuffix(key, "/cni") {
				continue
			}
			if s.Version != want {
				t.Errorf("%s: version %s, want %s", key, s.Version, want)
			}
		}
		// Every gated component passed its gate; an add-on the upgrade did
		// not change (metrics-server) may still be catching up with the
		// restarted API server and kubelets.
		healthy := time.Now()
		eventually(t, 90*time.Second, "every component healthy", func() error {
			for key, s := range l.status(t) {
				if !s.Healthy {
					return fmt.Errorf("%s not healthy", key)
				}
			}
			return nil
		})
		t.Logf("every component healthy %s after the upgrade", time.Since(healthy).Round(time.Second))
		if out, err := l.spec("plan", "-detailed-exitcode"); exitCode(err) != 0 {
			t.Errorf("plan after the upgrade: exit %d\n%s", exitCode(err), out)
		}
	})

	t.Run("a broken kube-apiserver flag is rolled back", func(t *testing.T) {
		before := l.status(t)["cp-1/kube-apiserver"]
		broken := filepath.Join(l.Dir, "broken.hcl")
		if err := os.WriteFile(broken, []byte("component \"kube-apiserver\" {\n  extra_args = {\n    \"audit-log-maxage\" = \"7\"\n    \"no-such-flag\" = \"1\"\n  }\n}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		orig := filepath.Join(l.Dir, "cluster.hcl")
		if err := os.WriteFile(orig, []byte(withoutBlock(string(cluster), `component "kube-apiserver"`)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			os.Remove(broken)
			os.WriteFile(orig, cluster, 0o644)
		})
		start := time.Now()
		out, err := l.spec("apply", "-auto-approve", "-var", "kubernetes_version=1.37.2")
		if err == nil {
			t.Fatalf("apply with a broken flag succeeded:\n%s", out)
		}
		for _, want := range []string{"unknown flag: --no-such-flag", fmt.Sprintf("rolled back to generation %d", before.Generation), "Apply stopped after a failed health gate"} {
			if !strings.Contains(out, want) {
				t.Errorf("apply output lacks %q:\n%s", want, out)
			}
		}
		after := l.status(t)["cp-1/kube-apiserver"]
		if after.Generation != before.Generation || !after.Healthy {
			t.Errorf("kube-apiserver after the rollback: generation %d healthy %v, want generation %d healthy", after.Generation, after.Healthy, before.Generation)
		}
		t.Logf("failed gate, rollback and report took %s", time.Since(start).Round(time.Second))
	})

	t.Run("a broken CoreDNS setting is rolled back by its gate", func(t *testing.T) {
		before := l.status(t)["cp-1/coredns"]
		broken := filepath.Join(l.Dir, "broken-dns.hcl")
		if err := os.WriteFile(broken, []byte("addon \"coredns\" {\n  forward = [\"/no/such/resolv.conf\"]\n}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(broken) })
		out, err := l.spec("apply", "-auto-approve", "-gate-timeout=45s", "-var", "kubernetes_version=1.37.2")
		if err == nil {
			t.Fatalf("apply with a broken Corefile succeeded:\n%s", out)
		}
		for _, want := range []string{"coredns on cp-1", fmt.Sprintf("rolled back to generation %d", before.Generation), "Apply stopped after a failed health gate"} {
			if !strings.Contains(out, want) {
				t.Errorf("apply output lacks %q:\n%s", want, out)
			}
		}
		if after := l.status(t)["cp-1/coredns"]; after.Generation != before.Generation || !after.Healthy {
			t.Errorf("coredns after the rollback: generation %d healthy %v, want generation %d healthy", after.Generation, after.Healthy, before.Generation)
		}
		if cf := l.mustKubectl("-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.Corefile}"); strings.Contains(cf, "/no/such") {
			t.Errorf("the broken Corefile is still applied:\n%s", cf)
		}
		os.Remove(broken)
		if out, err := l.spec("plan", "-detailed-exitcode", "-var", "kubernetes_version=1.37.2"); exitCode(err) != 0 {
			t.Errorf("plan after the rollback and the fix: exit %d\n%s", exitCode(err), out)
		}
	})

	t.Run("rollback kubelet", func(t *testing.T) {
		// A rollback is a plan carried out by the same executor as apply:
		// the same -json events, and a first Ctrl-C lets the running step
		// finish and starts no other.
		cmd := exec.Command(binary, "-chdir="+l.Dir, "rollback", "kubelet", "-auto-approve", "-json")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var events []map[string]any
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e map[string]any
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("rollback -json: not a JSON line: %q", sc.Text())
			}
			if e["type"] == "step_start" && len(events) > 0 && events[len(events)-1]["type"] == "plan" {
				cmd.Process.Signal(os.Interrupt)
			}
			events = append(events, e)
		}
		err = cmd.Wait()
		var starts, ends []string
		for _, e := range events {
			switch e["type"] {
			case "step_start":
				starts = append(starts, fmt.Sprint(e["step"]))
			case "step_end":
				ends = append(ends, fmt.Sprint(e["step"], " ", e["status"]))
			}
		}
		last := events[len(events)-1]
		if exitCode(err) != 1 || events[0]["type"] != "plan" || last["type"] != "summary" || last["steps_done"] != 1.0 ||
			len(starts) != 1 || len(ends) != 1 || ends[0] != "kubelet:worker-2 done" {
			t.Fatalf("rollback -json interrupted after its first step: exit %d, steps started %v, ended %v, summary %v", exitCode(err), starts, ends, last)
		}
		l.mustSpec("rollback", "kubelet", "--host", "worker-1", "--host", "cp-1", "-auto-approve")
		eventually(t, 60*time.Second, "every node Ready on kubelet v1.36.3", func() error {
			out, err := l.kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.status.nodeInfo.kubeletVersion} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}")
			if err != nil {
				return err
			}
			if strings.Count(out, "v1.36.3 True") != 3 {
				return fmt.Errorf("nodes: %q", out)
			}
			return nil
		})
		out, err := l.spec("plan", "-detailed-exitcode", "-var", "kubernetes_version=1.37.2")
		if exitCode(err) != 2 || !strings.Contains(out, `component.kubelet["worker-1"] will be upgraded`) {
			t.Errorf("plan after the rollback should show the kubelet upgrade pending (exit 2):\n%s", out)
		}
	})

	t.Run("an upgrade killed midway is resumed", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, "-chdir="+l.Dir, "apply", "-auto-approve", "-var", "kubernetes_version=1.37.2")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once the first kubelet is done and the next one started.
		sc := bufio.NewScanner(stdout)
		killed := false
		for sc.Scan() {
			if strings.Contains(sc.Text(), "kubelet upgrade done") {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
				break
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		if !killed {
			t.Fatal("the apply ended before a kubelet was upgraded")
		}
		out, err := l.spec("plan", "-detailed-exitcode", "-var", "kubernetes_version=1.37.2")
		if exitCode(err) != 2 {
			t.Fatalf("plan after the kill should show what is left (exit 2):\n%s", out)
		}
		l.mustSpec("apply", "-auto-approve", "-var", "kubernetes_version=1.37.2")
		if out, err := l.spec("plan", "-detailed-exitcode", "-var", "kubernetes_version=1.37.2"); exitCode(err) != 0 {
			t.Fatalf("plan after the resumed apply: exit %d\n%s", exitCode(err), out)
		}
		out = l.mustKubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.status.nodeInfo.kubeletVersion}{\"\\n\"}{end}")
		if strings.Count(out, "v1.37.2") != 3 {
			t.Errorf("nodes after the resumed upgrade: %q", out)
		}
	})
}

// withoutBlock removes the top-level block that starts with header.
func withoutBlock(src, header string) string {
	i := strings.Index(src, header)
	if i < 0 {
		return src
	}
	j := strings.Index(src[i:], "\n}\n")
	if j < 0 {
		return src
	}
	return src[:i] + src[i+j+3:]
}

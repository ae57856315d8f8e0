package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDestroy: the rebuild loop of a lab. A 1+1 cluster with pods running
// is destroyed; every host is back to what it was before the first apply
// (no process, file, mount, route, link or iptables chain of the cluster);
// a second destroy finds nothing; plan shows everything to create again;
// apply brings a working cluster back; destroy -keep-data and apply bring
// the same cluster back with its objects; and a last destroy (without
// -keep-data) removes the kept data too.
func TestDestroy(t *testing.T) {
	cluster, err := os.ReadFile(filepath.Join("..", "..", "examples", "lab", "cluster.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, "10.235.0.0/24", 1, 1, string(cluster))
	hosts := map[string]string{"cp-1": "10.235.0.11", "worker-1": "10.235.0.12"}
	manifest := filepath.Join(l.Dir, "echo.yaml")
	if err := os.WriteFile(manifest, []byte(echoApp), 0o644); err != nil {
		t.Fatal(err)
	}
	up := func() {
		t.Helper()
		l.mustSpec("apply", "-auto-approve")
		l.kubeconfig() // a new cluster has a new CA
		l.mustKubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")
		l.mustKubectl("apply", "-f", manifest)
		l.mustKubectl("rollout", "status", "deployment/echo", "--timeout=180s")
		client := &http.Client{Timeout: 2 * time.Second}
		eventually(t, 30*time.Second, "the echo service answers on the worker's NodePort", func() error {
			resp, err := client.Get("http://" + hosts["worker-1"] + ":30080/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %s", resp.Status)
			}
			return nil
		})
	}
	up()

	// The checks below must be able to fail: on a running cluster they find
	// the pods, shims, routes, chains and files.
	before := leftovers(t, l, hosts["worker-1"])
	for _, want := range []string{"/echo", "containerd-shim", "proto 204", ":KUBE-", ":CLUSTERCTL-", "/var/lib/kubelet/", "/opt/clusterctl"} {
		if !strings.Contains(strings.Join(before, "\n"), want) {
			t.Errorf("before destroy, the worker check does not see %q; it found:\n%s", want, strings.Join(before, "\n"))
		}
	}

	destroyWith := func(what string, run func() string) {
		t.Helper()
		start := time.Now()
		out := run()
		t.Logf("%s took %s", what, time.Since(start).Round(100*time.Millisecond))
		for _, want := range []string{`component.kubelet["worker-1"] will be destroyed`, `component.etcd["cp-1"] will be destroyed`,
			"Destroy complete", "The local state was moved to"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", what, want, out)
			}
		}
		if !regexp.MustCompile(`Destroy: \d+ components on 2 hosts\.`).MatchString(out) {
			t.Errorf("%s: no summary line:\n%s", what, out)
		}
		for name, addr := range hosts {
			if left := leftovers(t, l, addr); len(left) > 0 {
				t.Errorf("%s: %s still has:\n  %s", what, name, strings.Join(left, "\n  "))
			}
		}
		if _, err := os.Stat(filepath.Join(l.Dir, ".clusterctl")); !os.IsNotExist(err) {
			t.Errorf("%s: the state folder is still in place (%v)", what, err)
		}
		old, _ := filepath.Glob(filepath.Join(l.Dir, ".clusterctl.destroyed-*", "pki", "ca.crt"))
		if len(old) == 0 {
			t.Errorf("%s: the old CA was not kept in .clusterctl.destroyed-*", what)
		}
	}
	destroy := func(what string) {
		t.Helper()
		destroyWith(what, func() string { return l.mustSpec("destroy", "-auto-approve") })
	}
	destroy("destroy of a running cluster")

	t.Run("destroy again finds nothing", func(t *testing.T) {
		out := l.mustSpec("destroy", "-auto-approve")
		if !strings.Contains(out, "nothing to destroy") {
			t.Errorf("second destroy:\n%s", out)
		}
	})

	t.Run("plan shows everything to create; apply brings the cluster back", func(t *testing.T) {
		out, err := l.spec("plan", "-detailed-exitcode")
		if exitCode(err) != 2 || !strings.Contains(out, `component.etcd["cp-1"] will be created`) ||
			!strings.Contains(out, `component.kubelet["worker-1"] will be created`) || !strings.Contains(out, "0 to update, 0 to delete") {
			t.Fatalf("plan after destroy: exit %d, want 2 with only creations:\n%s", exitCode(err), out)
		}
		up()
		if out := l.mustKubectl("get", "--raw", "/readyz"); strings.TrimSpace(out) != "ok" {
			t.Fatalf("/readyz after the rebuild: %q", out)
		}
	})

	t.Run("keep-data: apply brings the same cluster back", func(t *testing.T) {
		l.mustKubectl("create", "configmap", "survivor", "--from-literal=kept=yes")
		out := l.mustSpec("destroy", "-auto-approve", "-keep-data")
		if !strings.Contains(out, "Kept (-keep-data): /var/lib/etcd on cp-1") || !strings.Contains(out, "Destroy complete") {
			t.Errorf("destroy -keep-data:\n%s", out)
		}
		if etcd := l.mustSSH(hosts["cp-1"], "ls -A /var/lib/etcd"); !strings.Contains(etcd, "member") {
			t.Errorf("etcd's data was not kept: %q", etcd)
		}
		for name, addr := range hosts {
			for _, left := range leftovers(t, l, addr) {
				if !strings.HasPrefix(left, "file: /var/lib/etcd/") && !strings.HasPrefix(left, "file: /var/lib/containerd/") &&
					left != "file: /etc/clusterctl/kept-data" {
					t.Errorf("%s after destroy -keep-data: %s", name, left)
				}
			}
		}
		if out := l.mustSpec("destroy", "-auto-approve", "-keep-data"); !strings.Contains(out, "nothing to destroy") {
			t.Errorf("a second destroy -keep-data:\n%s", out)
		}
		l.mustSpec("apply", "-auto-approve")
		// The old admin kubeconfig works: the PKI was kept.
		eventually(t, 60*time.Second, "the ConfigMap made before destroy -keep-data", func() error {
			out, err := l.kubectl("get", "configmap", "survivor", "-o", "jsonpath={.data.kept}")
			if err != nil || out != "yes" {
				return fmt.Errorf("%q %v", out, err)
			}
			return nil
		})
	})

	// The last destroy is a saved plan: `plan -destroy -out F`, refused by
	// another clusterctl build (its digest differs), then `apply F`.
	destroyWith("destroy of the rebuilt cluster through plan -destroy -out and apply", func() string {
		planFile := filepath.Join(l.Dir, "destroy.plan")
		out := l.mustSpec("plan", "-destroy", "-out", planFile)
		other := filepath.Join(t.TempDir(), "clusterctl")
		b, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(other, append(b, []byte("another build")...), 0o755); err != nil {
			t.Fatal(err)
		}
		refused, err := exec.Command(other, "-chdir="+l.Dir, "apply", planFile).CombinedOutput()
		if err == nil || !strings.Contains(string(refused), "the clusterctl binary changed") {
			t.Errorf("apply of a saved plan by another clusterctl build: %v, want a refusal naming the binary:\n%s", err, refused)
		}
		return out + l.mustSpec("apply", planFile)
	})
}

// leftovers lists what of the cluster is on a lab host: processes, files in
// clusterctl's and the components' folders, mounts, pod routes, links and
// iptables chains. The lab's own mount points stay (emptied), and so does
// its marker /etc/clusterctl/lab-host.json.
func leftovers(t *testing.T, l *Lab, addr string) []string {
	t.Helper()
	var out []string
	ps := l.mustSSH(addr, "ps -eo pid=,args=")
	for _, line := range strings.Split(ps, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] == "ps" || f[1] == "bash" || f[1] == "sh" || strings.HasPrefix(f[1], "sshd") {
			continue // the check's own session
		}
		args := strings.Join(f[1:], " ")
		for _, bad := range []string{"etcd", "kube-", "containerd", "pause", "/echo", "clusterctl agent"} {
			if strings.Contains(args, bad) {
				out = append(out, "process: "+args)
				break
			}
		}
	}
	const dirs = "/etc/clusterctl /opt/clusterctl /etc/kubernetes /var/lib/etcd /var/lib/kubelet /var/lib/containerd " +
		"/run/containerd /var/lib/clusterctl /var/log/clusterctl /var/log/pods /etc/cni/net.d /var/lib/cni /run/netns"
	files := l.mustSSH(addr, "for d in "+dirs+"; do [ -e $d ] && ls -A $d | grep -vx lab-host.json | sed \"s|^|$d/|\"; done; true")
	for _, f := range strings.Fields(files) {
		out = append(out, "file: "+f)
	}
	mounts := l.mustSSH(addr, "awk '{print $5}' /proc/self/mountinfo")
	for _, m := range strings.Fields(mounts) {
		for _, under := range []string{"/var/lib/kubelet/", "/run/containerd/", "/run/netns/", "/var/lib/containerd/"} {
			if strings.HasPrefix(m, under) {
				out = append(out, "mount: "+m)
			}
		}
	}
	if r := strings.TrimSpace(l.mustSSH(addr, "ip -4 route show proto 204")); r != "" {
		out = append(out, "route: "+strings.ReplaceAll(r, "\n", "; ")+" (proto 204)")
	}
	for _, link := range strings.Split(l.mustSSH(addr, "ip -o link show"), "\n") {
		if strings.Contains(link, "cni0") || strings.Contains(link, "veth") {
			out = append(out, "link: "+link)
		}
	}
	rules := l.mustSSH(addr, "iptables-save; ip6tables-save")
	for _, r := range strings.Split(rules, "\n") {
		for _, p := range []string{":KUBE-", ":CLUSTERCTL-", ":CNI-", "-j KUBE-", "-j CLUSTERCTL-", "-j CNI-"} {
			if strings.Contains(r, p) {
				out = append(out, "iptables: "+r)
				break
			}
		}
	}
	return out
}

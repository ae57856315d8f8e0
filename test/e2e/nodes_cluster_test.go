package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/lab"
)

// nodesCluster is the cluster part of the node tests: the lab's hosts with
// every component (the control plane on cp-1, node components everywhere).
const nodesCluster = `cluster "e2e-nodes" {
  kubernetes_version = "1.37.2"
  pod_cidr           = "10.244.0.0/16"
  service_cidr       = "10.96.0.0/12"
}
`

// echoWorkload is the bundled test image as a Deployment spread over the
// schedulable nodes, a ClusterIP Service and a NodePort Service.
const echoWorkload = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 4
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        nodeTaintsPolicy: Honor
        labelSelector:
          matchLabels: {app: echo}
      containers:
      - name: echo
        image: localhost/clusterctl-echo:v1
        imagePullPolicy: Never
        ports: [{containerPort: 8080}]
        env:
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-np}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
`

// userImage is the reference inside the test's own image archive.
const userImage = "localhost/e2e-user:v1"

// userImageHCL puts the test's image archive on the workers.
const userImageHCL = `image "user" {
  archive = "user-image.tar"
  roles   = ["worker"]
}
`

// userWorkload runs the user image with no pull at all.
const userWorkload = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: user
spec:
  replicas: 2
  selector:
    matchLabels: {app: user}
  template:
    metadata:
      labels: {app: user}
    spec:
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        nodeTaintsPolicy: Honor
        labelSelector:
          matchLabels: {app: user}
      containers:
      - name: user
        image: localhost/e2e-user:v1
        imagePullPolicy: Never
`

// writeUserImage writes the bundled echo image as a docker archive named
// userImage.
func writeUserImage(t *testing.T, out string) {
	t.Helper()
	img := echoImage(t)
	ref, err := name.NewTag(userImage)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		t.Fatal(err)
	}
}

// echoImage is the bundled echo image, read from its archive.
func echoImage(t *testing.T) v1.Image {
	t.Helper()
	c := &bundle.Cache{Root: cacheRoot()}
	src, _, err := c.Lookup(bundle.EchoImage, "v1", bundle.HostPlatform(), "echo.tar")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// echoAnswer is what the test image answers.
type echoAnswer struct {
	Hostname string `json:"hostname"`
	PodIP    string `json:"pod_ip"`
	Client   string `json:"client"`
}

func (a echoAnswer) clientIP() string {
	ip, _, _ := strings.Cut(a.Client, ":")
	return ip
}

// parseEcho reads the JSON line of an echo answer (after HTTP headers when
// the request was made with bash's /dev/tcp).
func parseEcho(out string) (echoAnswer, error) {
	var a echoAnswer
	i := strings.LastIndex(out, "{")
	if i < 0 {
		return a, fmt.Errorf("no JSON in %q", out)
	}
	err := json.Unmarshal([]byte(out[i:]), &a)
	return a, err
}

// httpGetScript fetches http://ADDR:PORT/ with bash alone (no curl on the
// hosts needed) and prints the raw answer.
func httpGetScript(addr string, port int) string {
	return fmt.Sprintf(`timeout 5 bash -c 'exec 3<>/dev/tcp/%s/%d; printf "GET / HTTP/1.0\r\nHost: x\r\n\r\n" >&3; cat <&3'`, addr, port)
}

// fromPod makes an HTTP request from inside a pod with kubectl exec (the
// echo image's own client, `/echo get URL`) and reads the echo answer.
func (l *Lab) fromPod(pod, url string) (echoAnswer, error) {
	out, err := l.kubectl("exec", pod, "--", "/echo", "get", url)
	if err != nil {
		return echoAnswer{}, fmt.Errorf("kubectl exec %s -- /echo get %s: %v\n%s", pod, url, err, out)
	}
	return parseEcho(out)
}

type pod struct {
	Name, Node, IP string
	Ready          bool
	Restarts       int
}

func (l *Lab) echoPods(t *testing.T) []pod {
	t.Helper()
	return l.pods(t, "default", "app=echo")
}

// pods are the pods of a namespace that match a label selector.
func (l *Lab) pods(t *testing.T, namespace, selector string) []pod {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				NodeName string `json:"nodeName"`
			} `json:"spec"`
			Status struct {
				PodIP             string `json:"podIP"`
				Phase             string `json:"phase"`
				ContainerStatuses []struct {
					Ready        bool `json:"ready"`
					RestartCount int  `json:"restartCount"`
				} `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(l.mustKubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	var out []pod
	for _, it := range list.Items {
		p := pod{Name: it.Metadata.Name, Node: it.Spec.NodeName, IP: it.Status.PodIP}
		for _, c := range it.Status.ContainerStatuses {
			p.Ready = c.Ready && it.Status.Phase == "Running"
			p.Restarts += c.RestartCount
		}
		out = append(out, p)
	}
	return out
}

type nodeInfo struct {
	Name, KubeletVersion string
	Ready                bool
	Images               []string
	Labels               map[string]string
	Taints               []string
}

func (l *Lab) nodes(t *testing.T) map[string]nodeInfo {
	t.Helper()
	var list struct {
		Items []struct {
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Taints []struct{ Key, Effect string } `json:"taints"`
			} `json:"spec"`
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
				NodeInfo   struct {
					KubeletVersion string `json:"kubeletVersion"`
				} `json:"nodeInfo"`
				Images []struct {
					Names []string `json:"names"`
				} `json:"images"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(l.mustKubectl("get", "nodes", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]nodeInfo{}
	for _, it := range list.Items {
		n := nodeInfo{Name: it.Metadata.Name, KubeletVersion: it.Status.NodeInfo.KubeletVersion, Labels: it.Metadata.Labels}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" {
				n.Ready = c.Status == "True"
			}
		}
		for _, img := range it.Status.Images {
			n.Images = append(n.Images, img.Names...)
		}
		for _, tn := range it.Spec.Taints {
			n.Taints = append(n.Taints, tn.Key+":"+tn.Effect)
		}
		out[n.Name] = n
	}
	return out
}

// hostAddrs maps lab host names to addresses.
func (l *Lab) hostAddrs(t *testing.T) map[string]string {
	t.Helper()
	lb, err := lab.Open(l.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, h := range lb.Hosts() {
		m[h.Name] = h.Address
	}
	return m
}

// workstationGet fetches a URL from the test process (the workstation is
// on the lab bridge).
func workstationGet(url string) (echoAnswer, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get(url)
	if err != nil {
		return echoAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return echoAnswer{}, err
	}
	return parseEcho(string(b))
}

// TestNodesCluster is the node side on a 1 control-plane + 2 worker lab:
// nodes Ready with the bundled kubelet and images, a Deployment spread
// over both workers, pod-to-pod without NAT, Services from nodes and pods,
// self-healing of the node components, no-change re-apply, route repair
// and a node added later. One cluster serves every step.
func TestNodesCluster(t *testing.T) {
	l := newLab(t, "10.236.0.0/24", 1, 3, nodesCluster)
	addrs := l.hostAddrs(t)
	// worker-3 joins later: hide it from the spec for now.
	labHCL := filepath.Join(l.Dir, "lab.hcl")
	full, err := os.ReadFile(labHCL)
	if err != nil {
		t.Fatal(err)
	}
	without := regexp.MustCompile(`(?s)host "worker-3" \{.*?\n\}\n`).ReplaceAllString(string(full), "")
	if without == string(full) {
		t.Fatalf("no worker-3 block in lab.hcl:\n%s", full)
	}
	if err := os.WriteFile(labHCL, []byte(without), 0o644); err != nil {
		t.Fatal(err)
	}
	// A user's image archive for the workers: the echo image under another
	// name, as an image built elsewhere would come.
	writeUserImage(t, filepath.Join(l.Dir, "user-image.tar"))
	if err := os.WriteFile(filepath.Join(l.Dir, "images.hcl"), []byte(userImageHCL), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l.mustSpec("apply", "-auto-approve")
	t.Logf("apply from nothing: %s", time.Since(start).Round(time.Second))
	l.kubeconfig()
	workers := []string{"worker-1", "worker-2"}
	all := []string{"cp-1", "worker-1", "worker-2"}

	t.Run("nodes ready with the bundled kubelet, roles and taints", func(t *testing.T) {
		// The kubelet's health gate waits for Ready, so apply returning
		// means every node is Ready.
		ns := l.nodes(t)
		for _, name := range all {
			n, ok := ns[name]
			if !ok {
				t.Fatalf("node %s is not registered; nodes: %v", name, ns)
			}
			if !n.Ready || n.KubeletVersion != "v1.37.2" {
				t.Errorf("node %s: ready %v, kubelet %q; want Ready with v1.37.2", name, n.Ready, n.KubeletVersion)
			}
		}
		// The node lifecycle controller lifts node.kubernetes.io/not-ready
		// a moment after the node turned Ready.
		eventually(t, 30*time.Second, "roles and taints", func() error {
			ns := l.nodes(t)
			if _, ok := ns["cp-1"].Labels["node-role.kubernetes.io/control-plane"]; !ok || !slices.Equal(ns["cp-1"].Taints, []string{"node-role.kubernetes.io/control-plane:NoSchedule"}) {
				return fmt.Errorf("cp-1: labels %v taints %v; want the control-plane role and only its NoSchedule taint", ns["cp-1"].Labels, ns["cp-1"].Taints)
			}
			for _, w := range workers {
				if _, ok := ns[w].Labels["node-role.kubernetes.io/worker"]; !ok || len(ns[w].Taints) > 0 {
					return fmt.Errorf("%s: labels %v taints %v; want the worker role and no taint", w, ns[w].Labels, ns[w].Taints)
				}
			}
			return nil
		})
	})

	t.Run("every node has the bundled images", func(t *testing.T) {
		for name, n := range l.nodes(t) {
			for _, img := range []string{"localhost/clusterctl-echo:v1", "localhost/clusterctl-pause:3.10", "localhost/clusterctl-coredns:v1.14.6"} {
				if !slices.Contains(n.Images, img) {
					t.Errorf("node %s does not report %s; it has %q", name, img, n.Images)
				}
			}
		}
	})

	workload := filepath.Join(l.Dir, "echo.yaml")
	if err := os.WriteFile(workload, []byte(echoWorkload), 0o644); err != nil {
		t.Fatal(err)
	}
	l.mustKubectl("apply", "-f", workload)
	var pods []pod
	spread := t.Run("deployment of 4 spread over both workers", func(t *testing.T) {
		eventually(t, 90*time.Second, "4 echo pods running", func() error {
			pods = l.echoPods(t)
			per := map[string]int{}
			for _, p := range pods {
				if !p.Ready {
					return fmt.Errorf("pod %s on %q not ready", p.Name, p.Node)
				}
				per[p.Node]++
			}
			if len(pods) != 4 || per["worker-1"] != 2 || per["worker-2"] != 2 {
				return fmt.Errorf("pods per node %v, want 2 on each worker", per)
			}
			return nil
		})
	})
	if !spread {
		t.FailNow() // the network checks below need the pods
	}
	on := func(node string) pod {
		for _, p := range pods {
			if p.Node == node {
				return p
			}
		}
		t.Fatalf("no echo pod on %s", node)
		return pod{}
	}
	client, server := on("worker-1"), on("worker-2")

	t.Run("pod to pod across nodes without NAT", func(t *testing.T) {
		a, err := l.fromPod(client.Name, fmt.Sprintf("http://%s:8080/", server.IP))
		if err != nil {
			t.Fatal(err)
		}
		if a.PodIP != server.IP || a.clientIP() != client.IP {
			t.Errorf("pod %s asked pod %s: answer %+v; want it from %s seeing client %s", client.IP, server.IP, a, server.IP, client.IP)
		}
	})

	clusterIP := strings.TrimSpace(l.mustKubectl("get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}"))
	t.Run("ClusterIP service from every node and from a pod", func(t *testing.T) {
		for _, name := range all {
			out := l.mustSSH(addrs[name], httpGetScript(clusterIP, 80))
			if a, err := parseEcho(out); err != nil || !slices.ContainsFunc(pods, func(p pod) bool { return p.IP == a.PodIP }) {
				t.Errorf("ClusterIP %s from %s: %+v %v\n%s", clusterIP, name, a, err, out)
			}
		}
		// From a pod, many times: the answers come from pods on both
		// workers, and the pods on the other worker see the client's pod IP.
		seen := map[string]bool{}
		for i := 0; i < 20 && len(seen) < 2; i++ {
			a, err := l.fromPod(client.Name, fmt.Sprintf("http://%s:80/", clusterIP))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pods {
				if p.IP == a.PodIP {
					seen[p.Node] = true
					if p.Node == "worker-2" && a.clientIP() != client.IP {
						t.Errorf("a pod on worker-2 saw client %s through the Service, want the pod IP %s", a.clientIP(), client.IP)
					}
				}
			}
		}
		if !seen["worker-1"] || !seen["worker-2"] {
			t.Errorf("the Service answered only from %v in 20 requests", seen)
		}
	})

	t.Run("cluster DNS: CoreDNS on two nodes, names resolve in pods on every worker", func(t *testing.T) {
		// The add-on's gate waited for both replicas and for every one of
		// them to answer: right after apply they are there.
		dns := l.pods(t, "kube-system", "k8s-app=kube-dns")
		nodes := map[string]bool{}
		for _, p := range dns {
			if !p.Ready {
				t.Errorf("CoreDNS pod %s on %s is not ready", p.Name, p.Node)
			}
			nodes[p.Node] = true
		}
		if len(dns) != 2 || len(nodes) != 2 {
			t.Errorf("CoreDNS pods %+v, want 2 on 2 different nodes", dns)
		}
		for _, w := range workers {
			p := on(w)
			out, err := l.kubectl("exec", p.Name, "--", "/echo", "lookup", "kubernetes.default.svc.cluster.local")
			if err != nil || strings.TrimSpace(out) != "10.96.0.1" {
				t.Errorf("kubernetes.default.svc.cluster.local from %s on %s: %q %v, want 10.96.0.1", p.Name, w, out, err)
			}
			// The echo Service came after CoreDNS: its short name resolves
			// through the pod's search path, and answers.
			if a, err := l.fromPod(p.Name, "http://echo/"); err != nil || a.PodIP == "" {
				t.Errorf("http://echo/ from %s on %s: %+v %v", p.Name, w, a, err)
			}
		}
	})

	t.Run("resource metrics: kubectl top through metrics-server's APIService", func(t *testing.T) {
		cond := l.mustKubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", `jsonpath={.status.conditions[?(@.type=="Available")].status}`)
		if strings.TrimSpace(cond) != "True" {
			t.Errorf("APIService v1beta1.metrics.k8s.io Available=%q right after apply (its gate waits for it)", cond)
		}
		eventually(t, 90*time.Second, "kubectl top nodes lists every node", func() error {
			out, err := l.kubectl("top", "nodes", "--no-headers")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			for _, n := range all {
				if !regexp.MustCompile(`(?m)^` + n + `\s+\d+m`).MatchString(out) {
					return fmt.Errorf("no usage for %s:\n%s", n, out)
				}
			}
			return nil
		})
		if out, err := l.kubectl("top", "pods", "-n", "kube-system", "--no-headers"); err != nil || !strings.Contains(out, "coredns-") {
			t.Errorf("kubectl top pods -n kube-system: %v\n%s", err, out)
		}
	})

	t.Run("the user's image archive runs on both workers with no registry", func(t *testing.T) {
		for name, n := range l.nodes(t) {
			if has := slices.Contains(n.Images, userImage); has != (name != "cp-1") {
				t.Errorf("node %s has %s: %v; want it on the workers only (roles = [\"worker\"])", name, userImage, has)
			}
		}
		dep := filepath.Join(l.Dir, "user.yaml")
		if err := os.WriteFile(dep, []byte(userWorkload), 0o644); err != nil {
			t.Fatal(err)
		}
		l.mustKubectl("apply", "-f", dep)
		eventually(t, 60*time.Second, "2 pods of the user image running, one on each worker", func() error {
			per := map[string]int{}
			for _, p := range l.pods(t, "default", "app=user") {
				if !p.Ready {
					return fmt.Errorf("pod %s on %q not ready", p.Name, p.Node)
				}
				per[p.Node]++
			}
			if per["worker-1"] != 1 || per["worker-2"] != 1 {
				return fmt.Errorf("pods per node %v", per)
			}
			return nil
		})
		l.mustKubectl("delete", "-f", dep)
	})

	t.Run("NodePort on every node's address", func(t *testing.T) {
		for _, name := range all {
			a, err := workstationGet("http://" + addrs[name] + ":30080/")
			if err != nil || a.PodIP == "" {
				t.Errorf("NodePort on %s (%s): %+v %v", name, addrs[name], a, err)
			}
		}
	})

	t.Run("re-apply changes nothing", func(t *testing.T) {
		before := l.status(t)
		out := l.mustSpec("apply", "-auto-approve")
		if !strings.Contains(out, "No changes.") || strings.Contains(out, "uploaded") {
			t.Fatalf("re-apply did something:\n%s", out)
		}
		after := l.status(t)
		for k, b := range before {
			if a := after[k]; a.PID != b.PID || a.Restarts != b.Restarts {
				t.Errorf("%s restarted by a no-change apply: pid %d→%d", k, b.PID, a.PID)
			}
		}
	})

	for _, comp := range []string{"kubelet", "containerd"} {
		t.Run("kill -9 of "+comp+" on worker-1", func(t *testing.T) {
			key := "worker-1/" + comp
			before := l.status(t)[key]
			podsBefore := l.echoPods(t)
			l.mustSSH(addrs["worker-1"], fmt.Sprintf("kill -9 %d", before.PID))
			eventually(t, 60*time.Second, comp+" restarted and healthy", func() error {
				now := l.status(t)[key]
				if now.PID == before.PID || now.Restarts != before.Restarts+1 || !now.Healthy {
					return fmt.Errorf("%s: pid %d (was %d), restarts %d (was %d), healthy %v", key, now.PID, before.PID, now.Restarts, before.Restarts, now.Healthy)
				}
				return nil
			})
			eventually(t, 60*time.Second, "worker-1 Ready", func() error {
				if !l.nodes(t)["worker-1"].Ready {
					return fmt.Errorf("worker-1 not Ready")
				}
				return nil
			})
			// The pods were never restarted or replaced.
			after := l.echoPods(t)
			for _, p := range podsBefore {
				i := slices.IndexFunc(after, func(q pod) bool { return q.Name == p.Name })
				if i < 0 || after[i].Restarts != p.Restarts || !after[i].Ready || after[i].IP != p.IP {
					t.Errorf("pod %s changed after %s was killed: before %+v, after %v", p.Name, comp, p, after)
				}
			}
			// kubectl exec goes through the restarted kubelet, whose
			// streaming server may take a moment after the node is Ready.
			eventually(t, 30*time.Second, "pod to pod after "+comp+" was killed", func() error {
				a, err := l.fromPod(client.Name, fmt.Sprintf("http://%s:8080/", server.IP))
				if err != nil {
					return err
				}
				if a.clientIP() != client.IP {
					return fmt.Errorf("answer %+v, want client %s", a, client.IP)
				}
				return nil
			})
		})
	}

	t.Run("a deleted route and flushed masquerade chain are put back", func(t *testing.T) {
		routes := l.mustSSH(addrs["worker-1"], "ip -4 route show proto 204")
		dst := regexp.MustCompile(`(?m)^(\S+) via ` + regexp.QuoteMeta(addrs["worker-2"]) + ` `).FindStringSubmatch(routes)
		if dst == nil {
			t.Fatalf("worker-1 has no route via worker-2 (%s):\n%s", addrs["worker-2"], routes)
		}
		l.mustSSH(addrs["worker-1"], "ip route del "+dst[1]+" && iptables -t nat -F CLUSTERCTL-POSTROUTING")
		eventually(t, 20*time.Second, "route and rules back on worker-1", func() error {
			out, err := l.ssh(addrs["worker-1"], "ip -4 route show "+dst[1]+" proto 204 | grep -q via && iptables -t nat -S CLUSTERCTL-POSTROUTING | grep -q MASQUERADE")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
	})

	t.Run("a node added later gets a new range and routes everywhere; removed, routes go", func(t *testing.T) {
		cidrs := func() map[string]string {
			m := map[string]string{}
			for name, a := range addrs {
				if out, err := l.ssh(a, "cat /etc/clusterctl/installed.json"); err == nil {
					if p := regexp.MustCompile(`--pod-cidr=([0-9./]+)`).FindStringSubmatch(out); p != nil {
						m[name] = p[1]
					}
				}
			}
			return m
		}
		before := cidrs()
		if err := os.WriteFile(labHCL, full, 0o644); err != nil {
			t.Fatal(err)
		}
		out := l.mustSpec("apply", "-auto-approve")
		after := cidrs()
		for _, name := range all {
			if after[name] != before[name] {
				t.Errorf("%s moved from %s to %s when worker-3 joined", name, before[name], after[name])
			}
		}
		if after["worker-3"] == "" || slices.Contains([]string{after["cp-1"], after["worker-1"], after["worker-2"]}, after["worker-3"]) {
			t.Fatalf("worker-3 range %q (others %v)\n%s", after["worker-3"], after, out)
		}
		for _, name := range all {
			r := l.mustSSH(addrs[name], "ip -4 route show "+after["worker-3"])
			if !strings.Contains(r, "via "+addrs["worker-3"]) {
				t.Errorf("%s has no route to worker-3's pods %s: %q", name, after["worker-3"], r)
			}
		}
		if !l.nodes(t)["worker-3"].Ready {
			t.Errorf("worker-3 is not Ready after apply")
		}

		// Taken out of the spec again: the plan lists what goes from it,
		// apply drains it, deletes its Node and removes everything of
		// clusterctl there, no node routes to it any more, and nothing
		// else restarts.
		if err := os.WriteFile(labHCL, []byte(without), 0o644); err != nil {
			t.Fatal(err)
		}
		planOut, err := l.spec("plan", "-detailed-exitcode")
		if exitCode(err) != 2 {
			t.Fatalf("plan with worker-3 out of the spec: exit %d, want 2:\n%s", exitCode(err), planOut)
		}
		for _, comp := range []string{"agent", "containerd", "cni", "kubelet", "kube-proxy"} {
			if want := fmt.Sprintf("component.%s[\"worker-3\"] will be deleted", comp); !strings.Contains(planOut, want) {
				t.Errorf("plan lacks %q:\n%s", want, planOut)
			}
		}
		statusBefore, podsBefore := l.status(t), l.echoPods(t)
		l.mustSpec("apply", "-auto-approve")
		for _, name := range all {
			if r := l.mustSSH(addrs[name], "ip -4 route show "+after["worker-3"]); strings.TrimSpace(r) != "" {
				t.Errorf("%s still routes worker-3's pods after it left the spec: %q", name, r)
			}
		}
		if _, ok := l.nodes(t)["worker-3"]; ok {
			t.Errorf("the Node worker-3 is still there after it left the spec")
		}
		if left := leftovers(t, l, addrs["worker-3"]); len(left) > 0 {
			t.Errorf("worker-3 still has, after it left the spec:\n  %s", strings.Join(left, "\n  "))
		}
		statusAfter := l.status(t)
		for k, b := range statusBefore {
			if strings.HasPrefix(k, "worker-3/") || strings.HasSuffix(k, "/cni") {
				continue // the pod network's keeper reloads the node list
			}
			if a := statusAfter[k]; a.PID != b.PID || a.Restarts != b.Restarts {
				t.Errorf("%s restarted when worker-3 left: pid %d→%d, restarts %d→%d", k, b.PID, a.PID, b.Restarts, a.Restarts)
			}
		}
		podsAfter := l.echoPods(t)
		for _, p := range podsBefore {
			if p.Node == "worker-3" {
				continue
			}
			i := slices.IndexFunc(podsAfter, func(q pod) bool { return q.Name == p.Name })
			if i < 0 || podsAfter[i].Restarts != p.Restarts {
				t.Errorf("pod %s on %s changed when worker-3 left: before %+v, after %v", p.Name, p.Node, p, podsAfter)
			}
		}
		if out, err := l.spec("plan", "-detailed-exitcode"); exitCode(err) != 0 || !strings.Contains(out, "No changes.") {
			t.Errorf("plan after worker-3 left: exit %d, want No changes.\n%s", exitCode(err), out)
		}
	})

	// Last, as it leaves a node dead: the loss of a node with a CoreDNS
	// replica leaves names resolving from the other worker.
	t.Run("a node with a CoreDNS replica dies; names still resolve", func(t *testing.T) {
		victim := ""
		for _, p := range l.pods(t, "kube-system", "k8s-app=kube-dns") {
			if p.Node == "worker-1" || p.Node == "worker-2" {
				victim = p.Node
			}
		}
		if victim == "" {
			t.Fatal("no CoreDNS replica on a worker")
		}
		survivor := map[string]string{"worker-1": "worker-2", "worker-2": "worker-1"}[victim]
		var client string
		for _, p := range l.echoPods(t) {
			if p.Node == survivor {
				client = p.Name
			}
		}
		l.mustRun("lab", "kill", "--dir", l.Dir, victim)
		// Until the node controller takes the dead replica out of the
		// Service, a query may go to it and be retried by the resolver.
		ok := 0
		eventually(t, 120*time.Second, "10 lookups in a row from "+survivor, func() error {
			for ; ok < 10; ok++ {
				out, err := l.kubectl("exec", client, "--", "/echo", "lookup", "kubernetes.default.svc.cluster.local")
				if err != nil || strings.TrimSpace(out) != "10.96.0.1" {
					ok = 0
					return fmt.Errorf("lookup from %s after %s died: %q %v", survivor, victim, out, err)
				}
			}
			return nil
		})
	})
}

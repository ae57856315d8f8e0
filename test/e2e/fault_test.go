package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
)

// The fault tier: faults injected from the outside into real applies on a
// real lab, and after each one the next apply must carry on and, in the
// end, converge with nothing lost.
//
// The kill chain: every apply runs with -json; at the first step boundary
// the tier has not broken yet (the plan printed, a step started, one host's
// part of a step finished, a step ended) clusterctl gets SIGKILL, and the
// next apply starts at once. Each apply thus gets one boundary further, so a
// fresh apply and an upgrade are each cut at every one of their boundaries.
// Between kills the local state is checked (state.json readable, same
// lineage, serial never going back, every backup unchanged). When an apply
// reaches the end with no new boundary, the hosts are checked: plan says no
// changes, every package file matches the bundle's sha256, no temporary
// file is left, every component is healthy, and the cluster's objects are
// still there.
//
// The upgrade also meets an SSH link cut in the middle of an upload, a host
// restarted while its kubelet is upgraded, and the agent killed -9 the
// moment a component's generation is switched.

const faultSubnet = "10.239.0.0/24"

// faultPoint is one injected fault and what followed it.
type faultPoint struct {
	phase, fault, where, result string
}

type faultTier struct {
	t       *testing.T
	l       *Lab
	points  []faultPoint
	lineage string
	serial  int
	backups map[string][]byte // backups/ file name -> content first seen
}

func TestFaultInjection(t *testing.T) {
	cluster, err := os.ReadFile(filepath.Join("..", "..", "examples", "lab", "cluster.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	l := newLab(t, faultSubnet, 1, 2, strings.Replace(string(cluster), `cluster "lab"`, `cluster "fault"`, 1))
	f := &faultTier{t: t, l: l, backups: map[string][]byte{}}
	defer f.report()

	f.chain("fresh apply", []string{"-var", "kubernetes_version=1.36.3"}, nil)
	f.converged("fresh apply", "1.36.3")

	// Objects made between the install and the upgrade must survive it.
	l.mustKubectl("create", "namespace", "fault-marker")
	l.mustKubectl("-n", "fault-marker", "create", "configmap", "kept", "--from-literal=k=v-5d1c")
	l.mustKubectl("-n", "fault-marker", "create", "secret", "generic", "kept", "--from-literal=pw=s-93ab")

	f.chain("upgrade 1.36.3 → 1.37.2", []string{"-var", "kubernetes_version=1.37.2"}, f.upgradeFaults())
	f.converged("upgrade", "1.37.2")
	if out := l.mustKubectl("-n", "fault-marker", "get", "configmap", "kept", "-o", "jsonpath={.data.k}"); out != "v-5d1c" {
		t.Errorf("ConfigMap made before the upgrade: data %q, want v-5d1c", out)
	}
	if out := l.mustKubectl("-n", "fault-marker", "get", "secret", "kept", "-o", "jsonpath={.data.pw}"); out != "cy05M2Fi" {
		t.Errorf("Secret made before the upgrade: data %q, want base64 of s-93ab", out)
	}
}

// report lists every injection point with its result.
func (f *faultTier) report() {
	var b strings.Builder
	fmt.Fprintf(&b, "%d injection points:\n", len(f.points))
	for i, p := range f.points {
		fmt.Fprintf(&b, "  %3d  %-24s %-28s %-60s %s\n", i+1, p.phase, p.fault, p.where, p.result)
	}
	f.t.Log(b.String())
}

// special is a fault other than killing clusterctl, fired once at the first
// boundary where match says so, while that apply goes on.
type special struct {
	name  string
	match func(e applyEvent) bool
	// fire runs asynchronously; its result goes into the report.
	fire func(ctx context.Context, e applyEvent) string
	// after runs when the apply has ended (heal a link, ...).
	after func() string
	done  bool
}

// applyEvent is one -json line of an apply.
type applyEvent struct {
	Type, Step, Component, Action, Host, Status, Error string
	Hosts                                              []string
}

func (e applyEvent) where() string {
	on := e.Host
	if on == "" {
		on = strings.Join(e.Hosts, ",")
	}
	switch e.Type {
	case "plan":
		return "after the plan, before any step"
	case "step_start":
		return fmt.Sprintf("start of %s %s on %s", e.Action, e.Component, on)
	case "step_end":
		return fmt.Sprintf("end of %s %s on %s (%s)", e.Action, e.Component, on, e.Status)
	case "change":
		return fmt.Sprintf("%s %s done on %s", e.Action, e.Component, on)
	}
	return ""
}

// chain applies until an apply runs to its end with no new boundary,
// killing each at the first new one.
func (f *faultTier) chain(phase string, args []string, specials []*special) {
	t := f.t
	seen := map[string]bool{}
	for run := 1; ; run++ {
		if run > 200 {
			t.Fatalf("%s: still not converged after %d applies", phase, run-1)
		}
		var active *special
		activePoint := -1
		var fired []string
		var mu sync.Mutex
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		res := f.l.watchedApply(args, func(e applyEvent, stepHosts map[string][]string) bool {
			if e.Type == "change" && len(stepHosts[e.Step]) < 2 {
				return false // the step's end is the same boundary
			}
			where := e.where()
			if where == "" || active != nil {
				return false // one fault per apply
			}
			for _, s := range specials {
				if !s.done && s.match(e) {
					s.done, active, activePoint = true, s, len(f.points)
					f.points = append(f.points, faultPoint{phase: phase, fault: s.name, where: where})
					wg.Add(1)
					go func() {
						defer wg.Done()
						r := s.fire(ctx, e)
						mu.Lock()
						fired = append(fired, r)
						mu.Unlock()
					}()
					return false
				}
			}
			if seen[where] {
				return false
			}
			seen[where] = true
			f.points = append(f.points, faultPoint{phase: phase, fault: "kill -9 clusterctl", where: where})
			return true
		})
		cancel()
		wg.Wait()
		if active != nil {
			r := strings.Join(fired, "; ")
			if active.after != nil {
				r += "; " + active.after()
			}
			f.points[activePoint].result = fmt.Sprintf("%s; that apply exited %d", r, res.exit)
			f.checkLocal(phase)
			continue
		}
		if res.killed {
			f.points[len(f.points)-1].result = "killed; state and backups intact"
			f.checkLocal(phase)
			continue
		}
		if res.exit != 0 {
			t.Fatalf("%s: apply %d (no fault injected) failed with exit %d:\n%s", phase, run, res.exit, res.text())
		}
		t.Logf("%s: converged on apply %d", phase, run)
		// Each point before this converged: the applies after it went on
		// from where it left off and this one finished.
		for i := range f.points {
			if f.points[i].phase == phase && !strings.HasSuffix(f.points[i].result, "; converged") {
				f.points[i].result += "; converged"
			}
		}
		return
	}
}

// upgradeFaults are the non-kill faults of the upgrade.
func (f *faultTier) upgradeFaults() []*special {
	l := f.l
	addr := func(host string) string {
		return map[string]string{"cp-1": "10.239.0.11", "worker-1": "10.239.0.12", "worker-2": "10.239.0.13"}[host]
	}
	lab := func(verb, host string) string {
		if out, err := l.run("lab", verb, "--dir", l.Dir, host); err != nil {
			return fmt.Sprintf("lab %s %s: %v %s", verb, host, err, strings.TrimSpace(out))
		}
		return "lab " + verb + " " + host
	}
	return []*special{
		{
			// The kubelet binary (60 MB) is sent while the step runs: cut the
			// link shortly after the step starts and see whether a temporary
			// file was left mid-way.
			name:  "lab cut (SSH link) mid-upload",
			match: func(e applyEvent) bool { return isStart(e, "kubelet", "worker-2") },
			fire: func(ctx context.Context, e applyEvent) string {
				time.Sleep(150 * time.Millisecond)
				return lab("cut", "worker-2")
			},
			after: func() string {
				r := lab("heal", "worker-2")
				out, _ := l.ssh(addr("worker-2"), "find /opt/clusterctl -name '*.clusterctl-tmp-*' | wc -l")
				return r + fmt.Sprintf(" (temporary files left by the cut upload: %s)", strings.TrimSpace(out))
			},
		},
		{
			name:  "lab restart (host reboot)",
			match: func(e applyEvent) bool { return isStart(e, "kubelet", "worker-1") },
			fire: func(ctx context.Context, e applyEvent) string {
				time.Sleep(500 * time.Millisecond)
				return lab("restart", "worker-1")
			},
		},
		{
			name:  "kill -9 agent at a switch",
			match: func(e applyEvent) bool { return isStart(e, "kube-scheduler", "cp-1") },
			fire: func(ctx context.Context, e applyEvent) string {
				// Wait on the host for `current` to flip, then kill the agent
				// at once: the switch is half done (new generation current,
				// the process not yet replaced).
				script := `c=/etc/clusterctl/kube-scheduler/current; old=$(readlink $c); i=0
while [ "$(readlink $c)" = "$old" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
if [ "$(readlink $c)" = "$old" ]; then echo "current never flipped"; exit 0; fi
pkill -9 -f '^/opt/clusterctl/bin/clusterctl agent run' && echo "agent killed as current flipped $old -> $(readlink $c)"`
				out, err := l.ssh(addr("cp-1"), script)
				if err != nil {
					return fmt.Sprintf("agent kill: %v %s", err, strings.TrimSpace(out))
				}
				return strings.TrimSpace(out)
			},
		},
	}
}

func isStart(e applyEvent, component, host string) bool {
	if e.Type != "step_start" || e.Component != component {
		return false
	}
	for _, h := range e.Hosts {
		if h == host {
			return true
		}
	}
	return false
}

// applyResult is how a watched apply ended.
type applyResult struct {
	killed bool
	exit   int
	lines  []string
	stderr string
}

func (r applyResult) text() string {
	return strings.Join(r.lines, "\n") + "\n" + r.stderr
}

// watchedApply runs `apply -json -auto-approve args` and calls kill for
// each event; when it returns true clusterctl is sent SIGKILL at once.
func (l *Lab) watchedApply(args []string, kill func(e applyEvent, stepHosts map[string][]string) bool) applyResult {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"-chdir=" + l.Dir, "apply", "-json", "-auto-approve"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	var res applyResult
	stepHosts := map[string][]string{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		res.lines = append(res.lines, line)
		if res.killed {
			continue
		}
		var e applyEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			l.t.Errorf("apply -json: not a JSON line: %q", line)
			continue
		}
		if e.Type == "step_start" {
			stepHosts[e.Step] = e.Hosts
		}
		if kill(e, stepHosts) {
			cmd.Process.Kill()
			res.killed = true
		}
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	res.exit, res.stderr = exitCode(err), stderr.String()
	return res
}

// checkLocal checks the state folder after a fault: state.json readable,
// one lineage, the serial never lower, every backup seen before unchanged.
func (f *faultTier) checkLocal(phase string) {
	t := f.t
	dir := filepath.Join(f.l.Dir, ".clusterctl")
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if os.IsNotExist(err) && f.lineage == "" {
		return // killed before the first state was written
	}
	if err != nil {
		t.Fatalf("%s: state.json after a fault: %v", phase, err)
	}
	var st struct {
		Lineage string `json:"lineage"`
		Serial  int    `json:"serial"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: state.json after a fault is not JSON: %v", phase, err)
	}
	if f.lineage == "" {
		f.lineage = st.Lineage
	}
	if st.Lineage != f.lineage || st.Serial < f.serial {
		t.Fatalf("%s: state lineage %s serial %d after a fault; before it %s serial %d", phase, st.Lineage, st.Serial, f.lineage, f.serial)
	}
	f.serial = st.Serial
	entries, _ := os.ReadDir(filepath.Join(dir, "backups"))
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Name()] = true
		b, err := os.ReadFile(filepath.Join(dir, "backups", e.Name()))
		if err != nil || !json.Valid(b) {
			t.Fatalf("%s: backup %s unreadable after a fault: %v", phase, e.Name(), err)
		}
		if old, ok := f.backups[e.Name()]; ok && !bytes.Equal(old, b) {
			t.Fatalf("%s: backup %s changed after a fault", phase, e.Name())
		} else if !ok {
			f.backups[e.Name()] = b
		}
	}
	// Backups are pruned to the newest 10 (state.FileStore); any other
	// backup that is gone was lost.
	for name := range f.backups {
		if have[name] {
			continue
		}
		newer := 0
		for h := range have {
			if h > name {
				newer++
			}
		}
		if newer < 10 {
			t.Fatalf("%s: backup %s disappeared after a fault (only %d newer backups, 10 are kept)", phase, name, newer)
		}
		delete(f.backups, name)
	}
}

// converged checks the hosts once a phase has finished.
func (f *faultTier) converged(phase, version string) {
	t, l := f.t, f.l
	f.checkLocal(phase)
	if out, err := l.spec("plan", "-detailed-exitcode", "-var", "kubernetes_version="+version); exitCode(err) != 0 {
		t.Fatalf("%s: plan after the faults: exit %d, want 0 (no changes)\n%s", phase, exitCode(err), out)
	}
	l.kubeconfig()
	l.mustKubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=120s")
	if out := l.mustKubectl("get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}"); strings.Count(out, "v"+version) != 3 {
		t.Errorf("%s: kubelet versions %q, want three v%s", phase, out, version)
	}
	// Right after an upgrade an add-on may report unhealthy for a moment
	// (its pods move as the kubelets restart): healthy within a minute.
	eventually(t, time.Minute, phase+": every component running and healthy", func() error {
		for key, c := range l.status(t) {
			if !c.Healthy || c.State != "running" {
				return fmt.Errorf("%s is %s (healthy %v)", key, c.State, c.Healthy)
			}
		}
		return nil
	})
	self, _, err := bundle.HashFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.239.0.11", "10.239.0.12", "10.239.0.13"} {
		out := l.mustSSH(a, "find /opt/clusterctl /etc/clusterctl /etc/kubernetes /etc/containerd /etc/cni /var/lib/clusterctl "+
			"\\( -name '*.clusterctl-tmp-*' -o -name '.*.tmp-*' -o -name '.current.tmp*' \\) 2>/dev/null; true")
		if s := strings.TrimSpace(out); s != "" {
			t.Errorf("%s: temporary files left on %s:\n%s", phase, a, s)
		}
		sums := l.mustSSH(a, "find /opt/clusterctl/pkg /opt/clusterctl/bin -type f -print0 | xargs -0 sha256sum")
		n, problems := verifyPackages(sums, self)
		for _, p := range problems {
			t.Errorf("%s: %s: %s", phase, a, p)
		}
		t.Logf("%s: %s: %d package files match the bundle's sha256", phase, a, n)
	}
}

// verifyPackages checks `sha256sum` lines of a host's package files against
// the bundle's manifests (and the agent binary against ours).
func verifyPackages(sums, self string) (int, []string) {
	var problems []string
	n := 0
	manifests := map[string]map[string]string{} // comp/version -> file -> sha256
	for _, line := range strings.Split(strings.TrimSpace(sums), "\n") {
		sum, path, ok := strings.Cut(line, "  ")
		if !ok {
			problems = append(problems, "bad sha256sum line "+line)
			continue
		}
		n++
		if path == "/opt/clusterctl/bin/clusterctl" {
			if sum != self {
				problems = append(problems, "the agent binary differs from the clusterctl that installed it")
			}
			continue
		}
		parts := strings.Split(strings.TrimPrefix(path, "/opt/clusterctl/pkg/"), "/")
		if len(parts) == 4 && parts[0] == "images" { // images/NAME/SHA256-PREFIX/image.tar
			if !strings.HasPrefix(sum, parts[2]) {
				problems = append(problems, fmt.Sprintf("%s: sha256 %s does not start with its folder's name", path, sum))
			}
			continue
		}
		if len(parts) != 3 {
			problems = append(problems, "unexpected package file "+path)
			continue
		}
		comp, ver, file := parts[0], parts[1], parts[2]
		key := comp + "/" + ver
		m, ok := manifests[key]
		if !ok {
			m = readManifest(comp, ver)
			manifests[key] = m
		}
		if want, ok := m[file]; !ok {
			problems = append(problems, fmt.Sprintf("%s is in no bundle manifest", path))
		} else if want != sum {
			problems = append(problems, fmt.Sprintf("%s: sha256 %s, the bundle has %s", path, sum, want))
		}
	}
	sort.Strings(problems)
	return n, problems
}

func readManifest(comp, ver string) map[string]string {
	m := map[string]string{}
	b, err := os.ReadFile(filepath.Join(cacheRoot(), comp, ver, "linux-amd64", "manifest.json"))
	if err != nil {
		return m
	}
	var man struct {
		Files []struct{ Name, SHA256 string }
	}
	if json.Unmarshal(b, &man) == nil {
		for _, f := range man.Files {
			m[f.Name] = f.SHA256
		}
	}
	return m
}

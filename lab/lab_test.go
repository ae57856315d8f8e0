package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// initArg makes this test binary act as a lab host's init: Up re-executes
// it, as `clusterctl lab up` re-executes clusterctl.
const initArg = "lab-init-host"

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == initArg {
		err := RunHostInit(os.Args[2])
		fmt.Fprintln(os.Stderr, "init:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func testSelf(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe, initArg}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lab tests need root: they make network namespaces, mounts and cgroups")
	}
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// upLab makes a lab in a fresh folder on a random free subnet of
// 10.201.0.0/16 (so a user's lab on the default subnet is left alone, and
// labs of tests running at the same time do not collide) and removes it when
// the test ends, passed or not.
func upLab(t *testing.T, o Options) *Lab {
	t.Helper()
	needRoot(t)
	if o.Dir == "" {
		o.Dir = filepath.Join(t.TempDir(), "lab")
	}
	if len(o.Self) == 0 {
		o.Self = testSelf(t)
	}
	o.Progress = testWriter{t}
	for attempt := 1; ; attempt++ {
		o.Subnet = freeSubnet(t)
		l, err := Up(context.Background(), o)
		if errors.Is(err, ErrSubnetInUse) && attempt < 5 {
			continue // taken since freeSubnet looked
		}
		if err != nil {
			t.Fatalf("lab up: %v", err)
		}
		t.Cleanup(func() {
			if err := Down(context.Background(), o.Dir, testWriter{t}); err != nil {
				t.Errorf("lab down: %v", err)
			}
		})
		return l
	}
}

// freeSubnet picks a random /24 of 10.201.0.0/16 that no interface uses.
func freeSubnet(t *testing.T) netip.Prefix {
	t.Helper()
	for range 100 {
		b := make([]byte, 1)
		rand.Read(b)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 201, b[0], 0}), 24)
		if checkSubnetFree(p, "") == nil {
			return p
		}
	}
	t.Fatal("no free /24 in 10.201.0.0/16")
	return netip.Prefix{}
}

// nth is the address n above the subnet's network address.
func nth(p netip.Prefix, n int) string {
	a := p.Addr().As4()
	a[3] += byte(n)
	return netip.AddrFrom4(a).String()
}

// sshArgs are the real OpenSSH client's options for a lab: only the lab's
// key, only its known_hosts, strict host key checking.
func sshArgs(l *Lab) []string {
	return []string{
		"-F", "/dev/null",
		"-i", l.ClientKeyPath(), "-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + l.KnownHostsPath(),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=5",
		"-o", "LogLevel=ERROR",
	}
}

// sshRun runs command on a lab host with the real ssh client. extra
// options come first: for ssh the first value of an option wins.
func sshRun(l *Lab, addr, command string, extra ...string) (string, error) {
	args := append(extra, sshArgs(l)...)
	args = append(args, "root@"+addr, command)
	out, err := exec.Command("ssh", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ssh %s %q: %w: %s", addr, command, err, out)
	}
	return string(out), nil
}

// traces lists what of a lab is still on the machine.
func traces(t *testing.T, id, dir string, pids []int) []string {
	t.Helper()
	var found []string
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "lab-"+id+"-") {
			found = append(found, "netns "+line)
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "cl"+id) {
			found = append(found, "link "+line)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, dir) || strings.Contains(line, "lab-"+id+"-") {
			found = append(found, "mount "+line)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if cg, err := os.ReadFile(p + "/cgroup"); err == nil && strings.Contains(string(cg), "/lab-"+id+"-") {
			found = append(found, "process in a lab cgroup: "+p)
		}
		if cmd, err := os.ReadFile(p + "/cmdline"); err == nil && bytes.Contains(cmd, []byte(dir)) {
			found = append(found, "process naming the lab folder: "+p+" "+string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
		}
	}
	for _, pid := range pids {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(st), ") Z ") {
			if strings.Contains(string(st), "(lab.test)") {
				found = append(found, fmt.Sprintf("host init %d", pid))
			}
		}
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/lab-" + id + "-*")
	for _, c := range cgs {
		found = append(found, "cgroup "+c)
	}
	if _, err := os.Stat(dir); err == nil {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			found = append(found, "file "+filepath.Join(dir, e.Name()))
		}
	}
	return found
}

// mountpointsNow says which of the per-host paths exist on the workstation.
func mountpointsNow() map[string]bool {
	m := map[string]bool{}
	for _, p := range hostPaths() {
		for d := p.path; d != "/"; d = filepath.Dir(d) {
			_, err := os.Lstat(d)
			m[d] = err == nil
		}
	}
	return m
}

func TestUpSSHDown(t *testing.T) {
	needRoot(t)
	before := mountpointsNow()
	dir := filepath.Join(t.TempDir(), "lab")
	l := upLab(t, Options{Dir: dir, ControlPlanes: 1, Workers: 2})
	id := l.ID()
	subnet := netip.MustParsePrefix(l.state.Subnet)

	// lab.hcl: the agreed shape, canonical hcl.
	spec, err := os.ReadFile(l.SpecPath())
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(spec), "\n")
	want := fmt.Sprintf(`ssh {
  user             = "root"
  identity_files   = ["id_ed25519"]
  known_hosts_file = "known_hosts"
  host_key_policy  = "strict"
}

host "cp-1" {
  address = "%s"
  roles   = ["control-plane", "etcd"]
}

host "worker-1" {
  address = "%s"
  roles   = ["worker"]
}

host "worker-2" {
  address = "%s"
  roles   = ["worker"]
}
`, nth(subnet, 11), nth(subnet, 12), nth(subnet, 13))
	if body != want {
		t.Errorf("lab.hcl body:\n%s\nwant:\n%s", body, want)
	}
	if !strings.HasPrefix(string(spec), "# Written by `clusterctl lab up` on ") {
		t.Errorf("lab.hcl header: %q", strings.SplitN(string(spec), "\n", 2)[0])
	}

	// Each host is its own machine, reached with the real ssh client and
	// strict host key checking against the lab's known_hosts.
	for _, h := range l.Hosts() {
		out, err := sshRun(l, h.Address, strings.Join([]string{
			"hostname",
			"cat " + MarkerPath,
			"grep -c . /proc/self/cgroup >/dev/null && grep memory /proc/self/cgroup",
			"cat /proc/1/status | grep ^NSpid",
			"ip -o -4 addr show dev eth0 | awk '{print $4}'",
			"test -d /run/sshd && echo run-ok",
			"stat -c 'mode %a' /tmp /run/lock",
			"findmnt -n -o PROPAGATION /var/lib/kubelet",
			"touch /etc/kubernetes/from-" + h.Name + " /var/lib/etcd/x /tmp/x",
			"ls /etc/kubernetes",
			"mountpoint -q /sys/fs/cgroup/memory && test -d /sys/fs/cgroup/memory/lab-" + id + "-" + h.Name + "/host && echo cgroup-ok",
		}, "; "))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if lines[0] != h.Name {
			t.Errorf("%s: hostname %q", h.Name, lines[0])
		}
		var m Marker
		markerEnd := strings.Index(out, "}")
		if err := json.Unmarshal([]byte(out[len(lines[0])+1:markerEnd+1]), &m); err != nil {
			t.Fatalf("%s: marker: %v in %q", h.Name, err, out)
		}
		if want := (Marker{Lab: id, Host: h.Name, CgroupRoot: "/lab-" + id + "-" + h.Name, Address: h.Address}); m != want {
			t.Errorf("%s: marker %+v, want %+v", h.Name, m, want)
		}
		for _, want := range []string{
			"memory:/lab-" + id + "-" + h.Name + "/host\n",
			"NSpid:\t1\n",
			h.Address + "/24\n",
			"run-ok\nmode 1777\nmode 1777\nshared\n",
			"from-" + h.Name + "\n",
			"cgroup-ok\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", h.Name, want, out)
			}
		}
		if strings.Count(out, "from-") != 1 {
			t.Errorf("%s: sees another host's /etc/kubernetes:\n%s", h.Name, out)
		}
		if _, err := os.Stat(filepath.Join(l.HostDir(h.Name), "etc/kubernetes/from-"+h.Name)); err != nil {
			t.Errorf("%s: file written on the host is not in its folder: %v", h.Name, err)
		}
	}
	if _, err := os.Stat("/etc/kubernetes/from-cp-1"); err == nil {
		t.Error("a host's /etc/kubernetes leaked onto the workstation")
	}

	// Strict checking is what lets the client in: with an empty
	// known_hosts it refuses.
	empty := filepath.Join(t.TempDir(), "empty_known_hosts")
	os.WriteFile(empty, nil, 0o600)
	if _, err := sshRun(l, nth(subnet, 11), "true", "-o", "UserKnownHostsFile="+empty); err == nil {
		t.Error("ssh with an empty known_hosts and strict checking succeeded")
	}

	st, err := l.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, s := range st {
		if !s.Running || !s.LinkUp || !s.SSHD {
			t.Errorf("status %+v", s)
		}
		pids = append(pids, s.PID)
	}

	if err := Down(context.Background(), dir, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	if tr := traces(t, id, dir, pids); len(tr) > 0 {
		t.Errorf("lab down left:\n%s", strings.Join(tr, "\n"))
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("lab folder %s (made by up) is still there", dir)
	}
	if live, _ := liveLabIDs(); len(live) == 0 {
		after := mountpointsNow()
		for p, existed := range before {
			if after[p] != existed {
				t.Errorf("workstation path %s: existed before up %v, after down %v", p, existed, after[p])
			}
		}
	}
	// Down again is a no-op.
	if err := Down(context.Background(), dir, testWriter{t}); err != nil {
		t.Errorf("second lab down: %v", err)
	}
}

func TestFaults(t *testing.T) {
	l := upLab(t, Options{ControlPlanes: 1, Workers: 1})
	ctx := context.Background()
	cp := l.Hosts()[0]
	status := func(name string) HostStatus {
		t.Helper()
		st, err := l.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no host %s in status", name)
		return HostStatus{}
	}
	if _, err := sshRun(l, cp.Address, "echo keep > /var/lib/etcd/data; echo gone > /run/boot-marker"); err != nil {
		t.Fatal(err)
	}

	if err := l.Cut(ctx, "cp-1"); err != nil {
		t.Fatal(err)
	}
	if s := status("cp-1"); s.LinkUp || s.SSHD || !s.Running {
		t.Errorf("after cut: %+v", s)
	}
	if _, err := sshRun(l, cp.Address, "true", "-o", "ConnectTimeout=2"); err == nil {
		t.Error("ssh to a cut host succeeded")
	}
	if _, err := sshRun(l, l.Hosts()[1].Address, "true"); err != nil {
		t.Errorf("the other host is affected by the cut: %v", err)
	}
	if err := l.Heal(ctx, "cp-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sshRun(l, cp.Address, "true"); err != nil {
		t.Errorf("after heal: %v", err)
	}

	if err := l.Kill(ctx, "cp-1"); err != nil {
		t.Fatal(err)
	}
	if s := status("cp-1"); s.Running || s.SSHD || !s.LinkUp {
		t.Errorf("after kill: %+v", s)
	}
	if procs := processesIn(map[string]string{"net": netnsID(l.state.host("cp-1").Netns)}); len(procs) > 0 {
		t.Errorf("after kill, processes %v are in the host's netns", procs)
	}

	if err := l.Restart(ctx, "cp-1"); err != nil {
		t.Fatal(err)
	}
	// Same host key (strict known_hosts still matches), files kept, /run new.
	out, err := sshRun(l, cp.Address, "cat /var/lib/etcd/data; ls /run/boot-marker 2>&1 || true")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if !strings.HasPrefix(out, "keep\n") || !strings.Contains(out, "No such file") {
		t.Errorf("after restart: %q", out)
	}
	if s := status("cp-1"); !s.Running || !s.SSHD || !s.LinkUp {
		t.Errorf("after restart: %+v", s)
	}
	// Restart of a running host is a reboot too.
	if err := l.Restart(ctx, "cp-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := sshRun(l, cp.Address, "true"); err != nil {
		t.Errorf("after second restart: %v", err)
	}
}

func TestBastion(t *testing.T) {
	l := upLab(t, Options{ControlPlanes: 1, Workers: 1, Bastion: "cp-1"})
	hosts := l.Hosts()
	behind := hosts[len(hosts)-1]
	if behind.Name != "behind-1" || behind.Bastion != "cp-1" || behind.Address != nth(netip.MustParsePrefix(l.state.Subnet), 254) {
		t.Fatalf("hidden host: %+v", behind)
	}
	spec, _ := os.ReadFile(l.SpecPath())
	if strings.Contains(string(spec), "behind-1") {
		t.Error("lab.hcl lists the hidden host")
	}
	// Not reachable from the workstation...
	if c, err := net.DialTimeout("tcp", behind.Address+":22", 2*time.Second); err == nil {
		c.Close()
		t.Error("hidden host answers the workstation directly")
	}
	// ...nor from another lab host...
	if out, err := sshRun(l, hosts[1].Address, "timeout 2 bash -c '</dev/tcp/"+behind.Address+"/22' && echo reached || echo unreachable"); err != nil || !strings.Contains(out, "unreachable") {
		t.Errorf("from worker-1: %q %v", out, err)
	}
	// ...but through the bastion, with the real ssh -J.
	jump := "ProxyCommand=ssh " + strings.Join(sshArgs(l), " ") + " -W %h:%p root@" + hosts[0].Address
	out, err := sshRun(l, behind.Address, "hostname", "-o", jump)
	if err != nil || strings.TrimSpace(out) != "behind-1" {
		t.Fatalf("through the bastion: %q %v", out, err)
	}
	st, err := l.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := st[len(st)-1]; !s.Running || !s.SSHD || !s.LinkUp {
		t.Errorf("hidden host status %+v", s)
	}
}

func TestUpFailureCleansUp(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "lab")
	var progress bytes.Buffer
	// An init that exits at once: the hosts never become ready.
	_, err := Up(context.Background(), Options{Dir: dir, ControlPlanes: 1, Workers: 1, Subnet: freeSubnet(t), Self: []string{"/bin/false"}, Progress: &progress})
	if err == nil {
		Down(context.Background(), dir, nil)
		t.Fatal("lab up with a failing init succeeded")
	}
	if !strings.Contains(err.Error(), "init exited") {
		t.Errorf("error %q does not say the init exited", err)
	}
	// The id is in the progress line about the bridge: "lab 1a2b: bridge ...".
	id, _, _ := strings.Cut(strings.TrimPrefix(progress.String(), "lab "), ":")
	if !isLabID(id) {
		t.Fatalf("no lab id in the progress output %q", progress.String())
	}
	if tr := traces(t, id, dir, nil); len(tr) > 0 {
		t.Errorf("failed up left:\n%s", strings.Join(tr, "\n"))
	}
}

func TestRefusesSecondLabInDir(t *testing.T) {
	l := upLab(t, Options{ControlPlanes: 1})
	_, err := Up(context.Background(), Options{Dir: l.Dir(), ControlPlanes: 1, Subnet: freeSubnet(t), Self: testSelf(t)})
	if err == nil || !strings.Contains(err.Error(), "already holds a lab") {
		t.Fatalf("second up in the same folder: %v", err)
	}
	// The same subnet is refused too: the first lab's bridge has it.
	_, err = Up(context.Background(), Options{Dir: filepath.Join(t.TempDir(), "other"), ControlPlanes: 1, Subnet: netip.MustParsePrefix(l.state.Subnet), Self: testSelf(t)})
	if !errors.Is(err, ErrSubnetInUse) {
		t.Fatalf("second lab on the same subnet: %v", err)
	}
}

func TestTwoLabsCoexist(t *testing.T) {
	a := upLab(t, Options{ControlPlanes: 1})
	b := upLab(t, Options{ControlPlanes: 1})
	if a.ID() == b.ID() {
		t.Fatal("two labs share an id")
	}
	for _, l := range []*Lab{a, b} {
		if out, err := sshRun(l, l.Hosts()[0].Address, "hostname"); err != nil || strings.TrimSpace(out) != "cp-1" {
			t.Errorf("lab %s: %q %v", l.ID(), out, err)
		}
	}
	if err := a.Down(context.Background(), testWriter{t}); err != nil {
		t.Fatal(err)
	}
	if out, err := sshRun(b, b.Hosts()[0].Address, "ls -d /etc/kubernetes"); err != nil {
		t.Errorf("lab %s after the other lab went down: %q %v", b.ID(), out, err)
	}
}

func TestThirtyHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("30 hosts: skipped with -short")
	}
	l := upLab(t, Options{ControlPlanes: 3, Workers: 27})
	hosts := l.Hosts()
	if len(hosts) != 30 || hosts[29].Name != "worker-27" || hosts[29].Address != nth(netip.MustParsePrefix(l.state.Subnet), 40) {
		t.Fatalf("hosts: %d, last %+v", len(hosts), hosts[len(hosts)-1])
	}
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Go(func() {
			if out, err := sshRun(l, h.Address, "hostname"); err != nil || strings.TrimSpace(out) != h.Name {
				t.Errorf("%s: %q %v", h.Name, out, err)
			}
		})
	}
	wg.Wait()
}

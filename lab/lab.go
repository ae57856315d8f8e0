// Package lab makes local test hosts out of Linux namespaces on one machine,
// as root: a bridge, and per host a network namespace with its own address,
// a mount namespace in which the host layout (/etc/kubernetes, /var/lib/...,
// /run, /tmp, root's home) is the host's own, its own hostname, PID
// namespace and cgroup subtree, and a real OpenSSH sshd. It is the rig the
// end-to-end tests run clusterctl against, and `clusterctl lab`.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
	"github.com/clusterctl/clusterctl/provision"
)

// Options says what `lab up` makes.
type Options struct {
	// Dir is the lab folder: lab.hcl, keys, known_hosts, lab.json and
	// each host's files. Created if missing.
	Dir           string
	ControlPlanes int // hosts cp-1..N: roles control-plane and etcd
	Workers       int // hosts worker-1..M: role worker
	// Subnet of the bridge; zero means DefaultSubnet.
	Subnet netip.Prefix
	// Bastion, when set to one of the hosts, adds a host "behind-1" that is
	// reachable only through that host (not on the bridge).
	Bastion string
	// Self is the command that runs RunHostInit; Up appends the host's
	// config path. `clusterctl` passes itself with "lab init-host".
	Self []string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
}

// Host describes one lab host.
type Host struct {
	Name    string
	Address string
	Roles   []string
	// Bastion is the host through which this one is reachable, or "".
	Bastion string
}

// Lab is a running (or partly torn down) lab, described by its lab.json.
type Lab struct {
	state State
	self  []string
}

// maxParallel bounds how many hosts start or stop at once.
const maxParallel = 8

// Up makes a lab. If any step fails it removes what it made and returns
// the error.
func Up(ctx context.Context, o Options) (*Lab, error) {
	start := time.Now()
	out := o.Progress
	if out == nil {
		out = io.Discard
	}
	s, err := planLab(o)
	if err != nil {
		return nil, err
	}
	if err := preflight(s, o); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.Dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(s.Dir, 0o755); err != nil {
			return nil, err
		}
		s.CreatedDir = true
	}
	if err := os.Mkdir(filepath.Join(s.Dir, hostsDir), 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%s already exists but %s does not: remove the leftovers of an earlier lab first", filepath.Join(s.Dir, hostsDir), stateFile)
		}
		return nil, err
	}
	// From here on lab.json names everything before it is made.
	if err := writeState(s.Dir, s); err != nil {
		os.Remove(filepath.Join(s.Dir, hostsDir))
		return nil, err
	}
	l := &Lab{state: *s, self: o.Self}
	if err := l.build(ctx, out); err != nil {
		if derr := l.Down(context.WithoutCancel(ctx), io.Discard); derr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after the failed lab up: %w", derr))
		}
		return nil, err
	}
	fmt.Fprintf(out, "lab %s: %d hosts up in %.1fs; spec in %s\n", s.ID, len(s.Hosts), time.Since(start).Seconds(), filepath.Join(s.Dir, specFile))
	return l, nil
}

// planLab names everything a lab will have: id, bridge, hosts, links.
func planLab(o Options) (*State, error) {
	if o.Dir == "" {
		return nil, errors.New("lab: no folder given (--dir)")
	}
	if o.ControlPlanes < 0 || o.Workers < 0 || o.ControlPlanes+o.Workers == 0 {
		return nil, fmt.Errorf("lab: need at least one host (control planes %d, workers %d)", o.ControlPlanes, o.Workers)
	}
	if len(o.Self) == 0 {
		return nil, errors.New("lab: no command to run host init (Options.Self)")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if dir == "/" {
		return nil, errors.New("lab: the lab folder cannot be /")
	}
	subnet := o.Subnet
	if !subnet.IsValid() {
		subnet = DefaultSubnet()
	}
	subnet = subnet.Masked()
	hidden := 0
	if o.Bastion != "" {
		hidden = 1
	}
	n := o.ControlPlanes + o.Workers
	addrs, err := planAddresses(subnet, n, hidden)
	if err != nil {
		return nil, err
	}
	id, err := newLabID()
	if err != nil {
		return nil, err
	}
	s := &State{
		Version:       1,
		ID:            id,
		Dir:           dir,
		Subnet:        subnet.String(),
		Bridge:        "cl" + id,
		BridgeAddress: netip.PrefixFrom(addrs.bridge, subnet.Bits()).String(),
	}
	add := func(name string, roles []string, addr netip.Addr, bastion string) {
		idx := len(s.Hosts) + 1
		h := HostState{
			Name:       name,
			Address:    addr.String(),
			Roles:      roles,
			Bastion:    bastion,
			Netns:      "lab-" + id + "-" + name,
			Link:       "cl" + id + "h" + strconv.Itoa(idx),
			CgroupRoot: "/" + cgroupName(id, name),
		}
		if bastion != "" {
			h.Link = "cl" + id + "b" + strconv.Itoa(idx)
			h.LinkNetns = "lab-" + id + "-" + bastion
		}
		s.Hosts = append(s.Hosts, h)
	}
	for i := range o.ControlPlanes {
		add("cp-"+strconv.Itoa(i+1), []string{"control-plane", "etcd"}, addrs.hosts[i], "")
	}
	for i := range o.Workers {
		add("worker-"+strconv.Itoa(i+1), []string{"worker"}, addrs.hosts[o.ControlPlanes+i], "")
	}
	if o.Bastion != "" {
		if s.host(o.Bastion) == nil {
			return nil, fmt.Errorf("lab: bastion %q is not one of the hosts", o.Bastion)
		}
		add("behind-1", nil, addrs.hidden[0], o.Bastion)
	}
	return s, nil
}

// newLabID picks an id no lab on this machine uses.
func newLabID() (string, error) {
	live, err := liveLabIDs()
	if err != nil {
		return "", err
	}
	for range 20 {
		b := make([]byte, 2)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		id := hex.EncodeToString(b)
		if !live[id] && !linkExists("cl"+id) {
			return id, nil
		}
	}
	return "", errors.New("lab: no free lab id")
}

// preflight checks what Up needs before it changes anything.
func preflight(s *State, o Options) error {
	if os.Geteuid() != 0 {
		return errors.New("lab: must run as root (it makes network namespaces, mounts and cgroups)")
	}
	if _, err := os.Stat(filepath.Join(s.Dir, stateFile)); err == nil {
		return fmt.Errorf("%s already holds a lab; run `clusterctl lab down --dir %s` first", s.Dir, s.Dir)
	}
	for _, tool := range []string{"ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("lab: %s not found (install iproute2): %w", tool, err)
		}
	}
	if _, err := sshdPath(); err != nil {
		return err
	}
	return checkSubnetFree(netip.MustParsePrefix(s.Subnet), "")
}

// sshdPath finds OpenSSH's sshd, which must be run by absolute path.
func sshdPath() (string, error) {
	if p, err := exec.LookPath("sshd"); err == nil {
		return filepath.Abs(p)
	}
	for _, p := range []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("lab: sshd not found (install openssh-server)")
}

// build makes everything planLab named, saving lab.json as it goes.
func (l *Lab) build(ctx context.Context, out io.Writer) error {
	s := &l.state
	client, err := newKeyPair("clusterctl-lab-" + s.ID)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, clientKeyFile), client.private, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, clientKeyFile+".pub"), authorizedLine(client.public, "clusterctl-lab-"+s.ID), 0o644); err != nil {
		return err
	}
	if err := raiseKernelLimits("/proc/sys", out); err != nil {
		return err
	}
	cgroups, links, err := workstationCgroups()
	if err != nil {
		return err
	}
	for i := range s.Hosts {
		s.Hosts[i].CgroupDirs = hostCgroupDirs(cgroups, s.Hosts[i].CgroupRoot)
	}
	if err := l.ensureMountpoints(); err != nil {
		return err
	}
	sshd, err := sshdPath()
	if err != nil {
		return err
	}
	hosts, err := etcHosts(s)
	if err != nil {
		return err
	}
	hostKeys := map[string]ssh.PublicKey{}
	for i := range s.Hosts {
		h := &s.Hosts[i]
		key, err := newKeyPair("root@" + h.Name)
		if err != nil {
			return err
		}
		hostKeys[h.Name] = key.public
		cfg := &hostConfig{
			Lab: s.ID, Name: h.Name, Address: h.Address, SSHD: sshd,
			CgroupRoot: h.CgroupRoot, Cgroups: cgroups, CgroupLinks: links,
			Binds: binds(s.Dir, h.Name),
		}
		if err := writeHostFiles(s, h, key, client.public, hosts, cfg); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	if err := writeState(s.Dir, s); err != nil {
		return err
	}
	if err := l.makeNetwork(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "lab %s: bridge %s %s\n", s.ID, s.Bridge, s.BridgeAddress)
	for i := range s.Hosts {
		if err := createHostCgroups(cgroups, s.Hosts[i].CgroupRoot); err != nil {
			return fmt.Errorf("host %s: %w", s.Hosts[i].Name, err)
		}
	}
	err = l.forEachHost(func(h *HostState) error {
		if err := l.startHost(ctx, h); err != nil {
			return err
		}
		fmt.Fprintf(out, "lab %s: %s %s ready\n", s.ID, h.Name, h.Address)
		return nil
	})
	// Save the PIDs of the hosts that did start even when others failed.
	if serr := writeState(s.Dir, s); serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(s.Dir, knownHostsFile), knownHosts(s, hostKeys), 0o644); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.Dir, specFile), labSpec(s, time.Now()), 0o644)
}

// forEachHost runs fn for every host, a few at a time, and joins the errors.
func (l *Lab) forEachHost(fn func(h *HostState) error) error {
	errs := provision.ForEach(context.Background(), l.state.Hosts, maxParallel, func(_ context.Context, i int, _ HostState) error {
		return fn(&l.state.Hosts[i])
	})
	return errors.Join(errs...)
}

// makeNetwork makes the bridge, each host's netns and veth, addresses and
// routes. Hosts behind a bastion get a point-to-point veth into the
// bastion's netns and a /32 address from the lab subnet that only the
// bastion routes to.
func (l *Lab) makeNetwork(ctx context.Context) error {
	s := &l.state
	lines := []string{
		"link add " + s.Bridge + " type bridge",
		"addr add " + s.BridgeAddress + " dev " + s.Bridge,
		"link set " + s.Bridge + " up",
	}
	for _, h := range s.Hosts {
		lines = append(lines, "netns add "+h.Netns)
	}
	for _, h := range s.Hosts {
		if h.Bastion != "" {
			continue
		}
		lines = append(lines,
			"link add "+h.Link+" type veth peer name eth0 netns "+h.Netns,
			"link set "+h.Link+" master "+s.Bridge,
			"link set "+h.Link+" up",
		)
	}
	if err := runIP(ctx, "", lines...); err != nil {
		return err
	}
	prefix := netip.MustParsePrefix(s.BridgeAddress)
	// A lab started at the same moment may have passed the same preflight
	// check; now that the bridge has its address, one of them sees the other.
	if err := checkSubnetFree(prefix.Masked(), s.Bridge); err != nil {
		return err
	}
	for _, h := range s.Hosts {
		if h.Bastion != "" {
			b := s.host(h.Bastion)
			if err := runIP(ctx, h.LinkNetns,
				"link add "+h.Link+" type veth peer name eth0 netns "+h.Netns,
				"link set "+h.Link+" up",
				"route add "+h.Address+"/32 dev "+h.Link+" src "+b.Address,
			); err != nil {
				return err
			}
			if err := runIP(ctx, h.Netns,
				"link set lo up",
				"addr add "+h.Address+"/32 dev eth0",
				"link set eth0 up",
				"route add "+b.Address+"/32 dev eth0",
				"route add default via "+b.Address+" dev eth0",
			); err != nil {
				return err
			}
			continue
		}
		if err := runIP(ctx, h.Netns,
			"link set lo up",
			"addr add "+h.Address+"/"+strconv.Itoa(prefix.Bits())+" dev eth0",
			"link set eth0 up",
			// kubelet picks the node IP from the default route.
			"route add default via "+prefix.Addr().String(),
		); err != nil {
			return err
		}
	}
	return nil
}

// startHost starts a host's init in its netns with new mount, UTS and PID
// namespaces and waits until its sshd listens.
func (l *Lab) startHost(ctx context.Context, h *HostState) error {
	dir := hostDir(l.state.Dir, h.Name)
	logPath := filepath.Join(dir, "init.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(l.self[0], append(l.self[1:], filepath.Join(dir, "init.json"))...)
	cmd.Dir = "/"
	cmd.Env = hostEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w} // fd 3: the status pipe
	cmd.SysProcAttr = hostSysProcAttr()
	err = inNetns(h.Netns, cmd.Start)
	w.Close()
	if err != nil {
		return fmt.Errorf("host %s: start init: %w", h.Name, err)
	}
	// Reap the init when it dies while this process lives (tests); the
	// CLI exits long before, and the init is then re-parented.
	go func() { _ = cmd.Wait() }()
	h.PID = cmd.Process.Pid

	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(r, 64*1024))
		done <- result{string(b), err}
	}()
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	var res result
	select {
	case res = <-done:
	case <-timeout.C:
		res.err = errors.New("timed out waiting for the host to start")
	case <-ctx.Done():
		res.err = ctx.Err()
	}
	if res.err == nil && res.line == "ready\n" {
		return nil
	}
	msg := res.line
	if res.err != nil {
		msg = res.err.Error()
	}
	if msg == "" {
		msg = "init exited"
	}
	return fmt.Errorf("host %s: %s (log: %s)", h.Name, trimNL(msg), logPath)
}

func trimNL(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// ensureMountpoints makes the workstation folders the per-host folders are
// mounted on (e.g. /etc/kubernetes) when they are missing. Each one made is
// marked with an extended attribute so whichever lab goes down last
// removes it, and recorded in lab.json.
func (l *Lab) ensureMountpoints() error {
	s := &l.state
	for _, p := range hostPaths() {
		if p.file {
			continue
		}
		var missing []string
		for d := p.path; d != "/"; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); err == nil {
				break
			}
			missing = append([]string{d}, missing...)
		}
		for _, d := range missing {
			s.Mountpoints = append(s.Mountpoints, d)
			if err := writeState(s.Dir, s); err != nil {
				return err
			}
			if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("make mount point %s: %w", d, err)
			}
			markMountpoint(d)
		}
	}
	return nil
}

// Open reads the lab in dir. self is the host init command Restart uses
// (see Options.Self); it may be nil when not restarting.
func Open(dir string, self []string) (*Lab, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s, err := readState(abs)
	if err != nil {
		return nil, err
	}
	if s.Dir != abs {
		return nil, fmt.Errorf("%s: the lab was made in %s; moving a lab folder is not supported", filepath.Join(abs, stateFile), s.Dir)
	}
	return &Lab{state: *s, self: self}, nil
}

// ID is the lab's id: four hex digits in every name it gives the system.
func (l *Lab) ID() string { return l.state.ID }

// Dir is the lab folder (absolute).
func (l *Lab) Dir() string { return l.state.Dir }

// ClientKeyPath is the private key root on every host accepts.
func (l *Lab) ClientKeyPath() string { return filepath.Join(l.state.Dir, clientKeyFile) }

// KnownHostsPath is the known_hosts file with every host's key.
func (l *Lab) KnownHostsPath() string { return filepath.Join(l.state.Dir, knownHostsFile) }

// SpecPath is lab.hcl.
func (l *Lab) SpecPath() string { return filepath.Join(l.state.Dir, specFile) }

// BridgeAddress is the workstation's address on the lab bridge: what the
// hosts reach the workstation at (a registry a test serves, say).
func (l *Lab) BridgeAddress() netip.Addr {
	return netip.MustParsePrefix(l.state.BridgeAddress).Addr()
}

// Hosts lists the hosts in order.
func (l *Lab) Hosts() []Host {
	out := make([]Host, 0, len(l.state.Hosts))
	for _, h := range l.state.Hosts {
		out = append(out, Host{Name: h.Name, Address: h.Address, Roles: append([]string(nil), h.Roles...), Bastion: h.Bastion})
	}
	return out
}

// HostDir is the folder on the workstation that holds a host's own
// filesystem: HostDir(name)/etc/kubernetes is /etc/kubernetes on the host.
func (l *Lab) HostDir(name string) string { return hostFS(l.state.Dir, name) }

// HostKey returns a host's sshd public key.
func (l *Lab) HostKey(name string) (ssh.PublicKey, error) {
	if l.state.host(name) == nil {
		return nil, fmt.Errorf("lab %s: no host %q", l.state.ID, name)
	}
	b, err := os.ReadFile(filepath.Join(hostFS(l.state.Dir, name), "etc/ssh/ssh_host_ed25519_key.pub"))
	if err != nil {
		return nil, err
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	return k, err
}

// HostStatus is what `lab status` shows for a host.
type HostStatus struct {
	Host
	Running bool // its init (PID 1) is alive
	LinkUp  bool // not cut
	SSHD    bool // port 22 accepts connections (through the bastion for hidden hosts)
	PID     int
}

// Status probes every host.
func (l *Lab) Status(ctx context.Context) ([]HostStatus, error) {
	out := make([]HostStatus, len(l.state.Hosts))
	var (
		mu   sync.Mutex
		errs []error
	)
	idx := map[*HostState]int{}
	for i := range l.state.Hosts {
		idx[&l.state.Hosts[i]] = i
	}
	_ = l.forEachHost(func(h *HostState) error {
		st := HostStatus{Host: Host{Name: h.Name, Address: h.Address, Roles: h.Roles, Bastion: h.Bastion}}
		if isHostInit(h.PID, netnsID(h.Netns)) {
			st.Running, st.PID = true, h.PID
		}
		up, err := linkUp(ctx, h.LinkNetns, h.Link)
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("host %s: %w", h.Name, err))
			mu.Unlock()
		}
		st.LinkUp = up
		st.SSHD = l.sshdAnswers(h)
		out[idx[h]] = st
		return nil
	})
	return out, errors.Join(errs...)
}

// sshdAnswers dials the host's port 22: from the workstation, or from the
// bastion's netns for a hidden host.
func (l *Lab) sshdAnswers(h *HostState) bool {
	dial := func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(h.Address, "22"), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
	if h.LinkNetns != "" {
		return inNetns(h.LinkNetns, dial) == nil
	}
	return dial() == nil
}

func (l *Lab) mustHost(name string) (*HostState, error) {
	h := l.state.host(name)
	if h == nil {
		return nil, fmt.Errorf("lab %s: no host %q", l.state.ID, name)
	}
	return h, nil
}

// Cut takes a host's link down: packets to and from it are dropped, its
// TCP connections stall, as when a cable is pulled.
func (l *Lab) Cut(ctx context.Context, name string) error {
	return l.setLink(ctx, name, "down")
}

// Heal brings a cut host's link back.
func (l *Lab) Heal(ctx context.Context, name string) error {
	return l.setLink(ctx, name, "up")
}

func (l *Lab) setLink(ctx context.Context, name, state string) error {
	h, err := l.mustHost(name)
	if err != nil {
		return err
	}
	if err := runIP(ctx, h.LinkNetns, "link set "+h.Link+" "+state); err != nil {
		return fmt.Errorf("host %s: link %s: %w", name, state, err)
	}
	return nil
}

// Kill kills every process of a host, as a power cut would; its files stay.
func (l *Lab) Kill(ctx context.Context, name string) error {
	h, err := l.mustHost(name)
	if err != nil {
		return err
	}
	if err := stopHost(&l.state, h); err != nil {
		return err
	}
	h.PID = 0
	return writeState(l.state.Dir, &l.state)
}

// Restart boots a host again, like a reboot: its processes are killed if
// any are alive, /run and its cgroups start empty, its files, address and
// host key stay; then its sshd starts.
func (l *Lab) Restart(ctx context.Context, name string) error {
	h, err := l.mustHost(name)
	if err != nil {
		return err
	}
	if len(l.self) == 0 {
		return errors.New("lab: no command to run host init")
	}
	if err := stopHost(&l.state, h); err != nil {
		return err
	}
	h.PID = 0
	if err := removeCgroups(ownCgroupDirs(&l.state, h)); err != nil {
		return fmt.Errorf("host %s: %w", name, err)
	}
	cgroups, _, err := workstationCgroups()
	if err != nil {
		return err
	}
	if err := createHostCgroups(cgroups, h.CgroupRoot); err != nil {
		return fmt.Errorf("host %s: %w", name, err)
	}
	err = l.startHost(ctx, h)
	if serr := writeState(l.state.Dir, &l.state); serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

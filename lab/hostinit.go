package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// hostConfig is what a host's init needs to build the host: written by Up
// to DIR/hosts/NAME/init.json and read again on every (re)start.
type hostConfig struct {
	Lab         string        `json:"lab"`
	Name        string        `json:"name"`
	Address     string        `json:"address"`
	SSHD        string        `json:"sshd"` // absolute path of the sshd binary
	CgroupRoot  string        `json:"cgroup_root"`
	Cgroups     []cgroupMount `json:"cgroups"`
	CgroupLinks []cgroupLink  `json:"cgroup_links,omitempty"`
	Binds       []bindMount   `json:"binds"`
}

// bindMount puts a per-host folder or file from the lab folder on a
// workstation path, inside the host's mount namespace only.
type bindMount struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// statusFD is the pipe on which the init reports "ready" or "error: ..."
// to the process that started it.
const statusFD = 3

// sshdLog is where the host's sshd logs, inside the host (DIR/hosts/NAME/
// fs/var/log/sshd.log on the workstation).
const sshdLog = "/var/log/sshd.log"

// RunHostInit is the init (PID 1) of a lab host. Up starts it in the host's
// network namespace with new mount, UTS and PID namespaces; it builds the
// host's filesystem view, starts sshd, reports readiness on fd 3, then reaps
// orphans until it is killed. It returns only on failure.
func RunHostInit(configPath string) error {
	status := os.NewFile(statusFD, "status")
	fail := func(err error) error {
		if status != nil {
			fmt.Fprintf(status, "error: %v\n", err)
			status.Close()
		}
		return err
	}
	// The checks below keep a mistaken invocation from remounting the
	// workstation's own /proc, /sys and /run.
	if os.Getpid() != 1 {
		return fail(errors.New("lab host init must run as PID 1 of a new PID namespace; `clusterctl lab up` starts it"))
	}
	b, err := os.ReadFile(configPath)
	if err != nil {
		return fail(err)
	}
	var cfg hostConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fail(fmt.Errorf("%s: %w", configPath, err))
	}
	logger := log.New(os.Stderr, "init "+cfg.Name+": ", log.LstdFlags)

	// Notice children's exits before starting any.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT)

	if err := buildHost(&cfg); err != nil {
		return fail(fmt.Errorf("host %s: %w", cfg.Name, err))
	}
	sshd := exec.Command(cfg.SSHD, "-D", "-E", sshdLog, "-f", "/etc/ssh/sshd_config")
	sshd.Dir = "/"
	sshd.Env = hostEnv()
	sshd.Stdout, sshd.Stderr = os.Stderr, os.Stderr
	sshd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := sshd.Start(); err != nil {
		return fail(fmt.Errorf("host %s: start sshd: %w", cfg.Name, err))
	}
	// Never Wait on sshd: the reaper below collects every child, sshd too.
	if err := waitListening(&cfg, sshd.Process.Pid, sigs, logger); err != nil {
		return fail(fmt.Errorf("host %s: %w", cfg.Name, err))
	}
	fmt.Fprintln(status, "ready")
	status.Close()
	logger.Printf("ready: sshd (pid %d) listens on %s:22", sshd.Process.Pid, cfg.Address)
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			logger.Printf("%v: stopping every process of the host", sig)
			_ = unix.Kill(-1, unix.SIGTERM)
			time.Sleep(2 * time.Second)
			os.Exit(0) // the kernel kills what is left in the namespace
		}
		reap(sshd.Process.Pid, logger)
	}
	return nil
}

// hostEnv is the environment of processes the init starts.
func hostEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}
}

// reap collects every exited child, including orphans re-parented to the
// init; it reports whether the watched pid exited.
func reap(watch int, logger *log.Logger) bool {
	exited := false
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return exited
		}
		if pid == watch {
			exited = true
			logger.Printf("sshd (pid %d) exited: %v", pid, waitString(ws))
		}
	}
}

func waitString(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// waitListening waits until sshd accepts connections on the host's address.
func waitListening(cfg *hostConfig, pid int, sigs <-chan os.Signal, logger *log.Logger) error {
	addr := net.JoinHostPort(cfg.Address, "22")
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd does not listen on %s: %w (see %s in the host)", addr, err, sshdLog)
		}
		select {
		case sig := <-sigs:
			if sig != unix.SIGCHLD {
				return fmt.Errorf("stopped by %v while waiting for sshd", sig)
			}
			if reap(pid, logger) {
				return fmt.Errorf("sshd exited before listening on %s (see %s in the host)", addr, sshdLog)
			}
		case <-tick.C:
		}
	}
}

// buildHost makes the host's view of the machine in its own mount
// namespace: private propagation, hostname, its own /proc, /sys and cgroup
// mounts, a fresh /run, and its per-host folders bound over the shared
// root filesystem.
func buildHost(cfg *hostConfig) error {
	// Join the host's cgroups first: everything started later inherits them.
	if err := joinCgroups(cfg.Cgroups, cfg.CgroupRoot, os.Getpid()); err != nil {
		return err
	}
	// Open the bind sources before anything is mounted: the lab folder may
	// sit below a path that gets a per-host mount (/tmp, /root).
	fds := make([]int, len(cfg.Binds))
	for i, b := range cfg.Binds {
		fd, err := unix.Open(b.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", b.Source, err)
		}
		fds[i] = fd
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Sethostname([]byte(cfg.Name)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	const nodev = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	// A new /proc shows this PID namespace only.
	if err := remount("proc", "/proc", "proc", nodev, ""); err != nil {
		return err
	}
	// sysfs mounted from inside the netns shows the host's own interfaces.
	if err := remount("sysfs", "/sys", "sysfs", nodev, ""); err != nil {
		return err
	}
	if err := mountCgroups(cfg); err != nil {
		return err
	}
	if err := freshRun(); err != nil {
		return err
	}
	for i, b := range cfg.Binds {
		src := "/proc/self/fd/" + strconv.Itoa(fds[i])
		if err := unix.Mount(src, b.Target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", b.Source, b.Target, err)
		}
	}
	// Shared within the host, as systemd makes it on a real machine: the
	// kubelet and container runtimes rely on mount propagation. The peer
	// groups are new, so nothing propagates to the workstation or to other
	// hosts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make mounts shared: %w", err)
	}
	return nil
}

// remount detaches whatever is mounted at target (and below) in this mount
// namespace and mounts a new filesystem there.
func remount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	return nil
}

// mountCgroups mounts the workstation's cgroup hierarchies again over the
// new /sys, so the host sees /sys/fs/cgroup like any machine.
func mountCgroups(cfg *hostConfig) error {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if len(cfg.Cgroups) == 1 && cfg.Cgroups[0].Target == cgroupFS {
		c := cfg.Cgroups[0]
		if err := unix.Mount("cgroup2", c.Target, c.FSType, flags, c.Data); err != nil {
			return fmt.Errorf("mount cgroup2 on %s: %w", c.Target, err)
		}
		return nil
	}
	if err := unix.Mount("tmpfs", cgroupFS, "tmpfs", flags, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", cgroupFS, err)
	}
	for _, c := range cfg.Cgroups {
		if err := os.MkdirAll(c.Target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("cgroup", c.Target, c.FSType, flags, c.Data); err != nil {
			return fmt.Errorf("mount %s (%s) on %s: %w", c.FSType, c.Data, c.Target, err)
		}
	}
	for _, l := range cfg.CgroupLinks {
		if err := os.Symlink(l.Target, filepath.Join(cgroupFS, l.Name)); err != nil {
			return err
		}
	}
	return nil
}

// freshRun gives the host an empty tmpfs /run, as after a boot, with the
// folders sshd and sudo expect. The workstation's mounts below /run (the
// netns files of every lab host among them) are detached first so this
// host does not pin them.
func freshRun() error {
	mi, err := readMountinfo()
	if err != nil {
		return err
	}
	var below []string
	for _, m := range mi {
		if under(m.Mountpoint, "/run") {
			below = append(below, m.Mountpoint)
		}
	}
	// Deepest first; a detached parent takes its children along, so later
	// ones may already be gone.
	slices.SortFunc(below, func(a, b string) int { return len(b) - len(a) })
	for _, p := range below {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs on /run: %w", err)
	}
	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{"/run/sshd", 0o755}, {"/run/lock", 0o777 | fs.ModeSticky}} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			return err
		}
		if err := os.Chmod(d.path, d.mode); err != nil { // umask-proof, sticky bit
			return err
		}
	}
	return nil
}

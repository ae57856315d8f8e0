package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const cgroupFS = "/sys/fs/cgroup"

// hostCgroupLeaf is the child of a host's cgroup root that holds the host's
// own processes (init, sshd, later the agent). Keeping them out of the root
// itself leaves the root free for the kubelet's cgroupRoot (cgroup v2 allows
// no processes in a cgroup whose controllers are delegated to children).
const hostCgroupLeaf = "host"

// cgroupMount is one cgroup hierarchy mounted under /sys/fs/cgroup on the
// workstation; each lab host mounts the same hierarchies again.
type cgroupMount struct {
	Target string `json:"target"` // e.g. /sys/fs/cgroup/memory
	FSType string `json:"fstype"` // cgroup (v1) or cgroup2
	Data   string `json:"data"`   // mount data: controllers, name=..., options
}

// cgroupLink is a symlink in /sys/fs/cgroup (cpu -> cpu,cpuacct).
type cgroupLink struct {
	Name   string `json:"name"`
	Target string `json:"target"`
}

// workstationCgroups lists the cgroup hierarchies mounted under
// /sys/fs/cgroup and the symlinks between them.
func workstationCgroups() ([]cgroupMount, []cgroupLink, error) {
	mi, err := readMountinfo()
	if err != nil {
		return nil, nil, err
	}
	return cgroupsFromMountinfo(mi, os.ReadDir, os.Readlink)
}

func cgroupsFromMountinfo(mi []mountEntry, readDir func(string) ([]os.DirEntry, error), readlink func(string) (string, error)) ([]cgroupMount, []cgroupLink, error) {
	byTarget := map[string]cgroupMount{}
	var order []string
	for _, m := range mi {
		if (m.FSType != "cgroup" && m.FSType != "cgroup2") || !under(m.Mountpoint, cgroupFS) {
			continue
		}
		if m.Root != "/" {
			return nil, nil, fmt.Errorf("cgroup hierarchy at %s is mounted from %s, not its root; the lab needs whole hierarchies", m.Mountpoint, m.Root)
		}
		var opts []string
		for _, o := range strings.Split(m.SuperOpts, ",") {
			if o != "rw" && o != "ro" && o != "" {
				opts = append(opts, o)
			}
		}
		if _, seen := byTarget[m.Mountpoint]; !seen {
			order = append(order, m.Mountpoint)
		}
		byTarget[m.Mountpoint] = cgroupMount{Target: m.Mountpoint, FSType: m.FSType, Data: strings.Join(opts, ",")}
	}
	if len(order) == 0 {
		return nil, nil, fmt.Errorf("no cgroup hierarchy is mounted under %s", cgroupFS)
	}
	mounts := make([]cgroupMount, 0, len(order))
	for _, t := range order {
		mounts = append(mounts, byTarget[t])
	}
	if _, unified := byTarget[cgroupFS]; unified {
		return mounts[:1:1], nil, nil // cgroup v2 only: one hierarchy at /sys/fs/cgroup
	}
	var links []cgroupLink
	ents, err := readDir(cgroupFS)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		target, err := readlink(filepath.Join(cgroupFS, e.Name()))
		if err != nil {
			return nil, nil, err
		}
		links = append(links, cgroupLink{Name: e.Name(), Target: target})
	}
	return mounts, links, nil
}

// hostCgroupDirs are the absolute folders of a host's cgroup root in every
// hierarchy.
func hostCgroupDirs(mounts []cgroupMount, root string) []string {
	dirs := make([]string, 0, len(mounts))
	for _, m := range mounts {
		dirs = append(dirs, m.Target+root)
	}
	return dirs
}

// createHostCgroups makes root and root/host in every hierarchy.
func createHostCgroups(mounts []cgroupMount, root string) error {
	for _, m := range mounts {
		for _, dir := range []string{m.Target + root, m.Target + root + "/" + hostCgroupLeaf} {
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("cgroup %s: %w", dir, err)
			}
			if m.FSType == "cgroup" {
				if err := inheritCpuset(dir); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// inheritCpuset fills an empty cpuset.cpus/mems of a new cgroup v1 cpuset
// group from its parent: an empty cpuset refuses every task.
func inheritCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			return nil // not the cpuset hierarchy
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(cur)) > 0 {
			continue
		}
		parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), parent, 0o644); err != nil {
			return fmt.Errorf("cgroup %s: %s: %w", dir, f, err)
		}
	}
	return nil
}

// joinCgroups moves process pid into root/host in every hierarchy.
func joinCgroups(mounts []cgroupMount, root string, pid int) error {
	for _, m := range mounts {
		procs := filepath.Join(m.Target+root, hostCgroupLeaf, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", procs, err)
		}
	}
	return nil
}

// cgroupTree lists dir and every cgroup below it, parents first.
func cgroupTree(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// cgroupPIDs lists the processes in dirs and every cgroup below them.
func cgroupPIDs(dirs []string) []int {
	var pids []int
	for _, top := range dirs {
		for _, d := range cgroupTree(top) {
			b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// removeCgroups removes dirs and every cgroup below them, children first.
// The caller has killed their processes; a cgroup stays busy for a moment
// after its last process is reaped, so busy ones are retried briefly.
func removeCgroups(dirs []string) error {
	var errs []error
	for _, top := range dirs {
		tree := cgroupTree(top)
		for i := len(tree) - 1; i >= 0; i-- {
			if err := rmdirRetry(tree[i]); err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", tree[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

func rmdirRetry(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

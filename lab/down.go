package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// Down removes the lab in dir: every process, cgroup, link, namespace, mount
// point and file it made. A folder without a lab is not an error, so Down
// can be run again after a partial failure.
func Down(ctx context.Context, dir string, progress io.Writer) error {
	l, err := Open(dir, nil)
	if errors.Is(err, ErrNoLab) {
		if progress != nil {
			fmt.Fprintf(progress, "no lab in %s\n", dir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return l.Down(ctx, progress)
}

// Down removes the lab. lab.json goes last, and only when everything else
// is gone, so a failed Down can be run again.
func (l *Lab) Down(ctx context.Context, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	s := &l.state
	if err := l.forEachHost(func(h *HostState) error { return stopHost(s, h) }); err != nil {
		return err
	}
	var errs []error
	for i := range s.Hosts {
		if err := removeCgroups(ownCgroupDirs(s, &s.Hosts[i])); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.removeNetwork(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := l.removeMountpoints(progress); err != nil {
		errs = append(errs, err)
	}
	if err := l.removeFiles(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s down: %w", s.ID, err)
	}
	if err := os.Remove(filepath.Join(s.Dir, stateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if s.CreatedDir {
		_ = os.Remove(s.Dir) // only if empty: a user's cluster.hcl stays
	}
	fmt.Fprintf(progress, "lab %s: down\n", s.ID)
	return nil
}

// removeNetwork deletes the hosts' veths and netns and the bridge. Only
// what exists is deleted, so this can run again.
func (l *Lab) removeNetwork(ctx context.Context) error {
	s := &l.state
	var lines []string
	for _, h := range s.Hosts {
		if h.LinkNetns == "" && h.Link != "" && linkExists(h.Link) {
			lines = append(lines, "link del "+h.Link)
		}
	}
	// Hidden hosts first: their links live in their bastion's netns.
	hosts := slices.Clone(s.Hosts)
	slices.SortStableFunc(hosts, func(a, b HostState) int {
		switch {
		case a.Bastion != "" && b.Bastion == "":
			return -1
		case a.Bastion == "" && b.Bastion != "":
			return 1
		}
		return 0
	})
	for _, h := range hosts {
		if netnsExists(h.Netns) {
			lines = append(lines, "netns del "+h.Netns)
		}
	}
	if s.Bridge != "" && linkExists(s.Bridge) {
		lines = append(lines, "link del "+s.Bridge)
	}
	return runIP(ctx, "", lines...)
}

// mountpointXattr marks a workstation folder a lab created as a mount
// point; its value is the lab id.
const mountpointXattr = "trusted.clusterctl-lab"

func markMountpoint(dir string) {
	// Best effort: lab.json records it too; the mark lets another lab that
	// outlives this one remove it.
	_ = unix.Setxattr(dir, mountpointXattr, []byte("mountpoint"), 0)
}

func isMarkedMountpoint(dir string) bool {
	buf := make([]byte, 64)
	_, err := unix.Getxattr(dir, mountpointXattr, buf)
	return err == nil
}

// removeMountpoints removes the empty mount point folders labs created on
// the workstation, unless another lab still runs (it needs them, and the
// last lab down removes them by their mark).
func (l *Lab) removeMountpoints(progress io.Writer) error {
	s := &l.state
	live, err := liveLabIDs()
	if err != nil {
		return err
	}
	delete(live, s.ID)
	var cands []string
	add := func(d string) {
		if !slices.Contains(cands, d) {
			cands = append(cands, d)
		}
	}
	for _, d := range s.Mountpoints {
		add(d)
	}
	for _, p := range hostPaths() {
		for d := p.path; d != "/"; d = filepath.Dir(d) {
			if isMarkedMountpoint(d) {
				add(d)
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	if len(live) > 0 {
		fmt.Fprintf(progress, "lab %s: another lab runs; leaving mount points %v to it\n", s.ID, cands)
		return nil
	}
	slices.SortFunc(cands, func(a, b string) int { return len(b) - len(a) }) // children first
	var errs []error
	for _, d := range cands {
		err := unix.Rmdir(d)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
		case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
			// Something else has put files there since: it is not ours.
			fmt.Fprintf(progress, "lab %s: leaving %s: it is no longer empty\n", s.ID, d)
		default:
			errs = append(errs, fmt.Errorf("remove mount point %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// removeFiles removes what the lab wrote in its folder (except lab.json).
// Mounts below the folder in this namespace, which no lab step makes, are
// detached first so removing cannot reach through them.
func (l *Lab) removeFiles() error {
	s := &l.state
	mi, err := readMountinfo()
	if err != nil {
		return err
	}
	for i := len(mi) - 1; i >= 0; i-- {
		if under(mi[i].Mountpoint, s.Dir) {
			if err := unix.Unmount(mi[i].Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", mi[i].Mountpoint, err)
			}
		}
	}
	var errs []error
	if err := os.RemoveAll(filepath.Join(s.Dir, hostsDir)); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []string{specFile, knownHostsFile, clientKeyFile, clientKeyFile + ".pub"} {
		if err := os.Remove(filepath.Join(s.Dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

package lab

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// nsID returns the identity of a process's namespace of kind ("net",
// "mnt", "pid"), e.g. "mnt:[4026532512]", or "" if it cannot be read
// (the process is gone or a zombie).
func nsID(pid int, kind string) string {
	s, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, kind))
	if err != nil {
		return ""
	}
	return s
}

// isHostInit reports whether pid is still the init of the host whose
// netns has identity netID: in that netns and PID 1 of its own PID
// namespace. It guards against killing a recycled PID.
func isHostInit(pid int, netID string) bool {
	if pid <= 0 || netID == "" || nsID(pid, "net") != netID {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			return len(f) > 1 && f[len(f)-1] == "1"
		}
	}
	return false
}

// processesIn lists the processes in any of the given namespaces (ids as
// returned by nsID; empty ones match nothing).
func processesIn(ids map[string]string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		for kind, id := range ids {
			if id != "" && nsID(pid, kind) == id {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// stopHost kills every process of a host: its init (which takes its whole
// PID namespace along), anything else that entered its network or mount
// namespace, and anything left in its cgroups. It returns once they are
// gone.
func stopHost(s *State, h *HostState) error {
	ids := map[string]string{"net": netnsID(h.Netns)}
	if isHostInit(h.PID, ids["net"]) {
		ids["mnt"] = nsID(h.PID, "mnt")
		ids["pid"] = nsID(h.PID, "pid")
		_ = unix.Kill(h.PID, unix.SIGKILL)
	}
	cgroups := ownCgroupDirs(s, h)
	deadline := time.Now().Add(15 * time.Second)
	for {
		pids := processesIn(ids)
		for _, p := range cgroupPIDs(cgroups) {
			if !slices.Contains(pids, p) && p != os.Getpid() {
				pids = append(pids, p)
			}
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %s: processes %v are still alive", h.Name, pids)
		}
		for _, p := range pids {
			if err := unix.Kill(p, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("host %s: kill %d: %w", h.Name, p, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ownCgroupDirs returns the host's recorded cgroup folders, keeping only
// those that are really this host's (a hand-edited lab.json must not make
// `down` empty the workstation's root cgroup).
func ownCgroupDirs(s *State, h *HostState) []string {
	want := "/" + cgroupName(s.ID, h.Name)
	var out []string
	for _, d := range h.CgroupDirs {
		if strings.HasPrefix(d, cgroupFS+"/") && strings.HasSuffix(d, want) {
			out = append(out, d)
		}
	}
	return out
}

// cgroupName is the host's cgroup root below each hierarchy: per lab and
// per host, so two labs with a "cp-1" each do not share one.
func cgroupName(id, host string) string { return "lab-" + id + "-" + host }

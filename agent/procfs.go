package agent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is what the agent needs from /proc/<pid>/stat.
type procStat struct {
	State     byte   // R, S, D, Z, ...
	PGID      int    // field 5
	StartTime uint64 // field 22: clock ticks after boot; with the pid it names one process
}

// readProcStat parses /proc/<pid>/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	pgid, err1 := strconv.Atoi(f[2])
	st, err2 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return procStat{State: f[0][0], PGID: pgid, StartTime: st}, nil
}

// sameProcessAlive reports whether pid is still the process that started at
// startTime and has not exited (a zombie counts as exited).
func sameProcessAlive(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := readProcStat(pid)
	return err == nil && st.StartTime == startTime && st.State != 'Z' && st.State != 'X'
}

// watchExit returns a channel closed when the process (pid, startTime)
// exits. It works for processes that are not children of this agent: it
// polls a pidfd where the kernel has them and /proc otherwise. stop ends the
// watch early without closing the channel.
func watchExit(pid int, startTime uint64, every time.Duration, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err == nil {
			defer unix.Close(pidfd)
			// The pid may have been reused between the caller's check and
			// PidfdOpen; the start time settles it.
			if !sameProcessAlive(pid, startTime) {
				close(done)
				return
			}
		}
		ms := int(every / time.Millisecond)
		if ms < 1 {
			ms = 1
		}
		for {
			if pidfd >= 0 && err == nil {
				fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
				n, perr := unix.Poll(fds, ms)
				if perr == nil && n > 0 {
					close(done)
					return
				}
			} else {
				time.Sleep(every)
			}
			if !sameProcessAlive(pid, startTime) {
				close(done)
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	return done
}

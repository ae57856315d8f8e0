package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrLocked means another run holds the state lock; waiting for it (or
// force-unlock when it is stale) helps.
var ErrLocked = errors.New("state is locked")

// ErrLockMismatch means the lock to release has another ID.
var ErrLockMismatch = errors.New("lock ID does not match")

// LockInfo says who holds the lock, like Terraform's lock info.
type LockInfo struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"`
	Who       string    `json:"who"` // user@hostname
	Hostname  string    `json:"hostname"`
	PID       int       `json:"pid"`
	PIDStart  string    `json:"pid_start,omitempty"` // process start time, to tell a reused PID apart
	Created   time.Time `json:"created"`
}

// LockedError names the holder of the lock.
type LockedError struct {
	Path string
	Info LockInfo
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("state is locked by %s (operation %q, pid %d, since %s, lock ID %s); if that run is gone, run `clusterctl force-unlock %s`",
		e.Info.Who, e.Info.Operation, e.Info.PID, e.Info.Created.Format(time.RFC3339), e.Info.ID, e.Info.ID)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock implements Store. The lock is a file created exclusively. A lock left
// by a run on this machine whose process is gone (kill -9, power loss) is
// stale and taken over, so an interrupted apply can be resumed at once; a
// lock from a live process or another machine is refused.
func (f *FileStore) Lock(operation string) (LockInfo, error) {
	path := filepath.Join(f.Dir, lockFile)
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return LockInfo{}, fmt.Errorf("lock state: %w", err)
	}
	info := currentLockInfo(operation)
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return LockInfo{}, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, werr := fh.Write(append(b, '\n'))
			cerr := fh.Close()
			if err := errors.Join(werr, cerr); err != nil {
				os.Remove(path)
				return LockInfo{}, fmt.Errorf("lock state: %w", err)
			}
			return info, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return LockInfo{}, fmt.Errorf("lock state: %w", err)
		}
		held, rerr := readLock(path)
		if rerr != nil {
			return LockInfo{}, fmt.Errorf("lock state: %s exists but cannot be read: %w", path, rerr)
		}
		if !held.stale() {
			return LockInfo{}, &LockedError{Path: path, Info: held}
		}
		// Stale: the holder died on this machine. Remove and retry once.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return LockInfo{}, fmt.Errorf("lock state: remove stale lock: %w", err)
		}
	}
	return LockInfo{}, fmt.Errorf("lock state: %w: lost a race for %s", ErrLocked, path)
}

// Unlock implements Store.
func (f *FileStore) Unlock(id string) error {
	return f.unlock(id, "unlock state")
}

// ForceUnlock implements Store.
func (f *FileStore) ForceUnlock(id string) error {
	return f.unlock(id, "force-unlock")
}

func (f *FileStore) unlock(id, step string) error {
	path := filepath.Join(f.Dir, lockFile)
	held, err := readLock(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no lock is held", step)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	if held.ID != id {
		return fmt.Errorf("%s: %w: held by %s with ID %s, not %s", step, ErrLockMismatch, held.Who, held.ID, id)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	return nil
}

// ReadLock returns the current lock holder, if any.
func (f *FileStore) ReadLock() (LockInfo, bool, error) {
	info, err := readLock(filepath.Join(f.Dir, lockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return LockInfo{}, false, nil
	}
	return info, err == nil, err
}

func readLock(path string) (LockInfo, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return LockInfo{}, err
	}
	var info LockInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return LockInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

func currentLockInfo(operation string) LockInfo {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if user == "" {
		user = strconv.Itoa(os.Getuid())
	}
	pid := os.Getpid()
	return LockInfo{
		ID:        newID(),
		Operation: operation,
		Who:       user + "@" + host,
		Hostname:  host,
		PID:       pid,
		PIDStart:  processStart(pid),
		Created:   time.Now().UTC().Truncate(time.Second),
	}
}

// stale reports whether the lock's holder ran on this machine and is gone.
func (l LockInfo) stale() bool {
	host, _ := os.Hostname()
	if l.Hostname == "" || l.Hostname != host || l.PID <= 0 {
		return false
	}
	start := processStart(l.PID)
	if start == "" {
		return true // no such process
	}
	return l.PIDStart != "" && start != l.PIDStart // the PID was reused
}

// processStart returns the start time of a process (field 22 of
// /proc/PID/stat), or "" when the process does not exist or /proc is absent.
func processStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	// The command name (field 2) may contain spaces; fields after it start past the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
)

// ErrLocked means another run holds the state lock; waiting for it (or
// force-unlock when it is stale) helps.
var ErrLocked = errors.New("state is locked")

// ErrLockMismatch means the lock to release has another ID.
var ErrLockMismatch = errors.New("lock ID does not match")

// ErrLockCorrupt means the lock file exists but holds no readable lock (a
// crash while it was written, an edit); force-unlock removes it.
var ErrLockCorrupt = errors.New("state lock is corrupt")

// LockInfo says who holds the lock, like Terraform's lock info.
type LockInfo struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"`
	Who       string    `json:"who"` // user@hostname
	Hostname  string    `json:"hostname"`
	PID       int       `json:"pid"`
	PIDStart  string    `json:"pid_start,omitempty"` // process start time, to tell a reused PID apart
	Created   time.Time `json:"created"`
	// Replaced is the ID of the stale lock (its holder died on this
	// machine) that Lock took over; not stored.
	Replaced string `json:"-"`
}

// LockedError names the holder of the lock.
type LockedError struct {
	Path string
	Info LockInfo
}

func (e *LockedError) Error() string {
	// The ID is a plain word (readLock checks), so the command can be pasted.
	return fmt.Sprintf("state is locked by %s; if that run is gone, run `clusterctl force-unlock %s`", e.Info.Summary(), e.Info.ID)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Summary describes the holder for messages: every field from the file is
// made safe for a terminal and clipped.
func (l LockInfo) Summary() string {
	return fmt.Sprintf("%s (operation \"%s\", pid %d, since %s, lock ID %s)",
		printable(l.Who, maxField), printable(l.Operation, maxField), l.PID, l.Created.Format(time.RFC3339), printable(l.ID, maxField))
}

// CorruptLockError names a lock file that holds no readable lock.
type CorruptLockError struct {
	Path    string
	Problem string // what is wrong with it, safe to print
}

func (e *CorruptLockError) Error() string {
	return fmt.Sprintf("the state lock %s is corrupt (%s); if no other clusterctl run is using this state folder, remove it with `clusterctl force-unlock`", e.Path, e.Problem)
}

func (e *CorruptLockError) Unwrap() error { return ErrLockCorrupt }

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
	for attempt := 0; attempt < 3; attempt++ {
		err := createLock(path, append(b, '\n'))
		if err == nil {
			f.handOver(&info)
			return info, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return LockInfo{}, fmt.Errorf("lock state: %w", err)
		}
		held, rerr := readLock(path)
		if errors.Is(rerr, fs.ErrNotExist) {
			continue // released meanwhile
		}
		var ce *CorruptLockError
		if errors.As(rerr, &ce) {
			return LockInfo{}, fmt.Errorf("lock state: %w", rerr)
		}
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
		info.Replaced = held.ID
	}
	return LockInfo{}, fmt.Errorf("lock state: %w: lost a race for %s", ErrLocked, path)
}

// handOver names in info.Replaced the run from this folder that could not
// release its lease on every host (NoteUnreleased): holding this folder's
// lock means that run has ended, so its leases on hosts it could not reach
// at its end (a host rebooting, a link down) are this run's to take over at
// once rather than after they expire.
func (f *FileStore) handOver(info *LockInfo) {
	if info.Replaced != "" {
		return
	}
	if b, err := os.ReadFile(filepath.Join(f.Dir, unreleasedFile)); err == nil {
		if id := strings.TrimSpace(string(b)); plainID(id) {
			info.Replaced = id
		}
	}
}

// NoteUnreleased records that run id ended with a host lease it could not
// release, for the next run from this folder (handOver).
func (f *FileStore) NoteUnreleased(id string) error {
	return atomicfile.Write(filepath.Join(f.Dir, unreleasedFile), []byte(id+"\n"), 0o600)
}

// ClearUnreleased forgets it once a run released every lease.
func (f *FileStore) ClearUnreleased() error {
	if err := os.Remove(filepath.Join(f.Dir, unreleasedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// createLock makes the lock file with its whole content at once: written
// to a temporary file, then hard-linked into place, which fails when a lock
// exists. So a reader never sees a half-written lock, and never takes a
// lock being taken right now for a corrupt one. Where the file system has
// no hard links, an exclusive create is the fallback.
func createLock(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+lockFile+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if err := errors.Join(err, tmp.Close()); err != nil {
		return err
	}
	err = os.Link(name, path)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := fh.Write(data)
	if err := errors.Join(werr, fh.Close()); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// Unlock implements Store.
func (f *FileStore) Unlock(id string) error {
	path := filepath.Join(f.Dir, lockFile)
	held, err := readLock(path)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("unlock state: no lock is held")
	}
	if err != nil {
		return fmt.Errorf("unlock state: %w", err)
	}
	if held.ID != id {
		return fmt.Errorf("unlock state: %w: held by %s, not %s", ErrLockMismatch, held.Summary(), printable(id, maxField))
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("unlock state: %w", err)
	}
	return nil
}

// ForceUnlock implements Store.
func (f *FileStore) ForceUnlock(id string) error {
	_, err := f.ForceRelease(id)
	return err
}

// RemovedLock is what ForceRelease removed.
type RemovedLock struct {
	Path string
	Info LockInfo // the lock, when it was readable
	// Corrupt says what was wrong with a corrupt lock file; "" for a
	// readable lock.
	Corrupt string
	Size    int64
	Preview string // the start of a corrupt file, safe to print
}

// ForceRelease removes the lock with the given ID, or a corrupt lock file
// whatever id is (nothing in it can be matched, and it blocks every run;
// id may be ""), and says what it removed.
func (f *FileStore) ForceRelease(id string) (RemovedLock, error) {
	path := filepath.Join(f.Dir, lockFile)
	r := RemovedLock{Path: path}
	held, err := readLock(path)
	var ce *CorruptLockError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r, fmt.Errorf("force-unlock: no lock is held in %s", f.Dir)
	case errors.As(err, &ce):
		r.Corrupt = ce.Problem
		r.Size, r.Preview = preview(path)
	case err != nil:
		return r, fmt.Errorf("force-unlock: %w", err)
	case id == "":
		return r, fmt.Errorf("force-unlock: the state is locked by %s: pass that lock ID to remove it, and only if that run is gone", held.Summary())
	case held.ID != id:
		return r, fmt.Errorf("force-unlock: %w: held by %s, not %s", ErrLockMismatch, held.Summary(), printable(id, maxField))
	default:
		r.Info = held
	}
	if err := os.Remove(path); err != nil {
		return r, fmt.Errorf("force-unlock: %w", err)
	}
	return r, nil
}

// preview returns the size and the first bytes of a corrupt lock file,
// made safe to print; a special file is not read.
func preview(path string) (int64, string) {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() {
		return 0, ""
	}
	fh, err := os.Open(path)
	if err != nil {
		return st.Size(), ""
	}
	defer fh.Close()
	b, _ := io.ReadAll(io.LimitReader(fh, 4*maxField))
	return st.Size(), printable(string(b), maxField)
}

// ReadLock returns the current lock holder, if any.
func (f *FileStore) ReadLock() (LockInfo, bool, error) {
	info, err := readLock(filepath.Join(f.Dir, lockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return LockInfo{}, false, nil
	}
	return info, err == nil, err
}

// maxLockSize bounds what is read of a lock file; a real one is a few
// hundred bytes.
const maxLockSize = 64 << 10

// maxID is the longest lock ID accepted (newID makes 36 characters).
const maxID = 128

// readLock reads a lock file. A file that exists but holds no lock that
// can be used (not a regular file, too large, empty, not JSON, no plain
// ID) is a *CorruptLockError; other errors are the file system's.
func readLock(path string) (LockInfo, error) {
	// O_NONBLOCK: a FIFO in the lock's place must not hang the run.
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return LockInfo{}, err
	}
	defer fh.Close()
	corrupt := func(format string, args ...any) (LockInfo, error) {
		return LockInfo{}, &CorruptLockError{Path: path, Problem: fmt.Sprintf(format, args...)}
	}
	st, err := fh.Stat()
	if err != nil {
		return LockInfo{}, fmt.Errorf("read %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return corrupt("it is not a regular file but %s", fileKind(st.Mode()))
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxLockSize+1))
	if err != nil {
		return LockInfo{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxLockSize {
		return corrupt("it is larger than %d KiB", maxLockSize>>10)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return corrupt("it is empty")
	}
	var info LockInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return corrupt("not a lock in JSON: %s", printable(err.Error(), 2*maxField))
	}
	if !plainID(info.ID) {
		return corrupt("its lock ID \"%s\" is not a word of at most %d letters, digits, '-', '_' or '.'", printable(info.ID, maxField), maxID)
	}
	return info, nil
}

// plainID reports whether id can be shown and pasted into a shell as is.
func plainID(id string) bool {
	if id == "" || len(id) > maxID {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// maxField is how many characters of a field from a lock file a message
// shows.
const maxField = 100

// printable makes s safe to print on a terminal, clipped to max
// characters: control and format characters (escape sequences, bidi
// overrides) and invalid UTF-8 are shown escaped as %q would, so a lock
// file cannot drive the terminal of whoever reads the message.
func printable(s string, max int) string {
	var b strings.Builder
	for n := 0; s != ""; n++ {
		if n == max {
			b.WriteString("…")
			break
		}
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case !strconv.IsPrint(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		s = s[size:]
	}
	return b.String()
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

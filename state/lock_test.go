package state

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A lock file that holds no readable lock blocks every run with a message
// naming it and force-unlock, and force-unlock removes it whatever ID it is
// given.
func TestCorruptLockIsNamedAndForceUnlockRemovesIt(t *testing.T) {
	tests := []struct {
		name    string
		write   func(path string) error
		problem string
	}{
		{"garbage", func(p string) error { return os.WriteFile(p, []byte("\x1b[2J\x00garbage"), 0o600) }, "not a lock in JSON"},
		{"truncated", func(p string) error { return os.WriteFile(p, []byte(`{"id":"abc","operation":"ap`), 0o600) }, "not a lock in JSON"},
		{"empty", func(p string) error { return os.WriteFile(p, nil, 0o600) }, "it is empty"},
		{"no id", func(p string) error { return os.WriteFile(p, []byte(`{"operation":"apply"}`), 0o600) }, `lock ID "" is not a word`},
		{"null", func(p string) error { return os.WriteFile(p, []byte("null"), 0o600) }, `lock ID "" is not a word`},
		{"id with escapes", func(p string) error {
			return os.WriteFile(p, []byte(`{"id":"x; rm -rf ~\u001b]0;pwned\u0007"}`), 0o600)
		}, `lock ID "x; rm -rf ~\x1b]0;pwned\a" is not a word`},
		{"huge", func(p string) error { return os.WriteFile(p, []byte(strings.Repeat(" ", maxLockSize+1)), 0o600) }, "larger than 64 KiB"},
		{"folder", func(p string) error { return os.Mkdir(p, 0o700) }, "not a regular file but a folder"},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "not a regular file but a named pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "lock.json")
			if err := tt.write(path); err != nil {
				t.Fatal(err)
			}
			st := NewFileStore(dir)
			done := make(chan error, 1)
			go func() { _, err := st.Lock("apply"); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Lock hangs on the lock file")
			}
			var ce *CorruptLockError
			if !errors.As(err, &ce) || !errors.Is(err, ErrLockCorrupt) {
				t.Fatalf("Lock: want a CorruptLockError, got %v", err)
			}
			msg := err.Error()
			for _, want := range []string{path, "is corrupt", tt.problem, "clusterctl force-unlock"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
			if strings.ContainsAny(msg, "\x1b\x00\x07") {
				t.Errorf("message carries control characters: %q", msg)
			}
			if _, err := os.Lstat(path); err != nil {
				t.Fatalf("a run removed the corrupt lock: %v", err)
			}
			if err := st.Unlock("abc"); !errors.Is(err, ErrLockCorrupt) {
				t.Errorf("Unlock of a corrupt lock: %v", err)
			}

			r, err := st.ForceRelease("")
			if err != nil {
				t.Fatalf("ForceRelease: %v", err)
			}
			if r.Path != path || !strings.Contains(r.Corrupt, tt.problem) || strings.ContainsAny(r.Preview, "\x1b\x00") {
				t.Errorf("ForceRelease said %+v", r)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the corrupt lock is still there: %v", err)
			}
			info, err := st.Lock("apply")
			if err != nil {
				t.Fatalf("Lock after force-unlock: %v", err)
			}
			if err := st.Unlock(info.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestForceUnlockOfCorruptLockIgnoresID(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "lock.json"), []byte("{"), 0o600)
	if err := NewFileStore(dir).ForceUnlock("whatever"); err != nil {
		t.Fatal(err)
	}
}

func TestForceReleaseOfReadableLock(t *testing.T) {
	dir := t.TempDir()
	st := NewFileStore(dir)
	other := LockInfo{ID: "remote", Operation: "apply", Hostname: "elsewhere", PID: 1, Who: "ci@elsewhere"}
	b, _ := json.Marshal(other)
	os.WriteFile(filepath.Join(dir, "lock.json"), b, 0o600)

	// Without an ID a readable lock is named, not removed.
	if _, err := st.ForceRelease(""); err == nil || !strings.Contains(err.Error(), "lock ID remote") {
		t.Fatalf("ForceRelease without ID: %v", err)
	}
	if _, err := st.ForceRelease("other"); !errors.Is(err, ErrLockMismatch) {
		t.Fatalf("ForceRelease with another ID: %v", err)
	}
	r, err := st.ForceRelease("remote")
	if err != nil || r.Info.ID != "remote" || r.Corrupt != "" {
		t.Fatalf("ForceRelease = %+v, %v", r, err)
	}
	if _, err := st.ForceRelease("remote"); err == nil || !strings.Contains(err.Error(), "no lock is held") {
		t.Fatalf("ForceRelease without a lock: %v", err)
	}
}

// The fields of a lock are the file's, so anyone who can write it: what
// reaches the terminal is escaped and clipped.
func TestLockedErrorIsSanitized(t *testing.T) {
	dir := t.TempDir()
	evil := LockInfo{ID: "evil-1", Operation: "apply\x1b[31m\u202e", Hostname: "elsewhere", PID: 7,
		Who: "\x1b]0;owned\x07root@" + strings.Repeat("h", 5000) + "\xff"}
	b, _ := json.Marshal(evil)
	os.WriteFile(filepath.Join(dir, "lock.json"), b, 0o600)

	_, err := NewFileStore(dir).Lock("apply")
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("want a LockedError, got %v", err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\x1b\x07\u202e") {
		t.Errorf("message carries control characters: %q", msg)
	}
	for _, want := range []string{`\x1b]0;owned\aroot@hhh`, `operation "apply\x1b[31m\u202e"`, "…", "clusterctl force-unlock evil-1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
	if len(msg) > 600 {
		t.Errorf("message is %d bytes: the long field was not clipped", len(msg))
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"ci@build-1", 100, "ci@build-1"},
		{"a\nb\tc", 100, `a\nb\tc`},
		{"\x1b[2J", 100, `\x1b[2J`},
		{"bad\xffutf8", 100, `bad\xffutf8`},
		{"rtl\u202eoverride", 100, `rtl\u202eoverride`},
		{"zero\u200bwidth", 100, `zero\u200bwidth`},
		{"héllo wörld", 100, "héllo wörld"},
		{"abcdef", 3, "abc…"},
		{"abc", 3, "abc"},
	}
	for _, tt := range tests {
		if got := printable(tt.in, tt.max); got != tt.want {
			t.Errorf("printable(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

// Runs racing for the lock never see a half-written lock file: one wins,
// the others are told who holds it, none that it is corrupt.
func TestLockRaceNeverSeesCorruptLock(t *testing.T) {
	for round := 0; round < 50; round++ {
		st := NewFileStore(t.TempDir())
		const n = 8
		errs := make(chan error, n)
		for range n {
			go func() { _, err := st.Lock("apply"); errs <- err }()
		}
		won := 0
		for range n {
			err := <-errs
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrLocked) || errors.Is(err, ErrLockCorrupt):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d runs took the lock", round, won)
		}
		entries, _ := os.ReadDir(st.Dir)
		if len(entries) != 1 {
			t.Fatalf("round %d: state folder holds %d entries, want only lock.json", round, len(entries))
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/state"
)

func runUnlock(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := Run(context.Background(), append([]string{"-chdir", dir, "force-unlock"}, args...), &out, &errb)
	return out.String(), err
}

// A corrupt lock.json blocks every run; force-unlock removes it, with or
// without an ID, and says what it removed.
func TestForceUnlockCorruptLock(t *testing.T) {
	for _, args := range [][]string{nil, {"some-id"}} {
		dir := t.TempDir()
		path := filepath.Join(dir, state.DefaultDir, "lock.json")
		os.MkdirAll(filepath.Dir(path), 0o700)
		if err := os.WriteFile(path, []byte("{\"id\": \"8f3\x1b[2J"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := state.NewFileStore(filepath.Dir(path)).Lock("apply"); err == nil ||
			!strings.Contains(err.Error(), path+" is corrupt") || !strings.Contains(err.Error(), "clusterctl force-unlock") {
			t.Fatalf("a run on a corrupt lock: %v", err)
		}
		out, err := runUnlock(t, dir, args...)
		if err != nil {
			t.Fatalf("force-unlock %q: %v", args, err)
		}
		for _, want := range []string{"Removed the corrupt state lock " + path, "15 bytes", "not a lock in JSON", `It began: {"id": "8f3\x1b[2J`} {
			if !strings.Contains(out, want) {
				t.Errorf("force-unlock said %q, want %q in it", out, want)
			}
		}
		if strings.Contains(out, "\x1b") {
			t.Errorf("force-unlock printed an escape: %q", out)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("the corrupt lock is still there: %v", err)
		}
	}
}

func TestForceUnlockReadableLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, state.DefaultDir, "lock.json")
	os.MkdirAll(filepath.Dir(path), 0o700)
	b, _ := json.Marshal(state.LockInfo{ID: "remote-1", Operation: "apply", Who: "ci@\x1b]0;x\x07elsewhere", Hostname: "elsewhere", PID: 9})
	os.WriteFile(path, b, 0o600)

	if _, err := runUnlock(t, dir); err == nil || !strings.Contains(err.Error(), "lock ID remote-1") || strings.Contains(err.Error(), "\x1b") {
		t.Fatalf("force-unlock without ID: %v", err)
	}
	if _, err := runUnlock(t, dir, "other"); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("force-unlock with another ID: %v", err)
	}
	out, err := runUnlock(t, dir, "remote-1")
	if err != nil || !strings.Contains(out, `Released the state lock held by ci@\x1b]0;x\aelsewhere (operation "apply", pid 9`) {
		t.Fatalf("force-unlock remote-1: %q, %v", out, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("the lock is still there")
	}
	if _, err := runUnlock(t, dir, "remote-1"); err == nil || !strings.Contains(err.Error(), "no lock is held") {
		t.Fatalf("force-unlock without a lock: %v", err)
	}
}

package state

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteReadSerialAndBackups(t *testing.T) {
	dir := t.TempDir()
	st := NewFileStore(dir)
	st.Backups = 2
	got, err := st.Read()
	if err != nil || got != nil {
		t.Fatalf("empty store: got %v, %v", got, err)
	}
	s := New("demo")
	s.SetComponent("cp-1", "10.0.0.1", "etcd", ComponentState{Version: "3.6.16", Generation: 1, ConfigHash: "abc"})
	for i := 1; i <= 4; i++ {
		if err := st.Write(s); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if s.Serial != uint64(i) {
			t.Fatalf("serial after write %d = %d", i, s.Serial)
		}
	}
	got, err = st.Read()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, got); diff != "" {
		t.Fatalf("read back (-want +got):\n%s", diff)
	}
	backups, _ := filepath.Glob(filepath.Join(dir, "backups", "state-*.json"))
	if len(backups) != 2 {
		t.Fatalf("want 2 backups kept, got %v", backups)
	}
	if filepath.Base(backups[1]) != "state-00000003.json" {
		t.Fatalf("newest backup = %s", backups[1])
	}
	fi, err := os.Stat(filepath.Join(dir, "state.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.json mode: %v %v", fi.Mode(), err)
	}
}

func TestWriteRefusesStaleSerialAndOtherLineage(t *testing.T) {
	st := NewFileStore(t.TempDir())
	s := New("demo")
	if err := st.Write(s); err != nil {
		t.Fatal(err)
	}
	stale := s.Clone()
	if err := st.Write(s); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(stale); !errors.Is(err, ErrSerialConflict) {
		t.Fatalf("stale write: want ErrSerialConflict, got %v", err)
	}
	other := New("demo")
	other.Serial = s.Serial
	if err := st.Write(other); !errors.Is(err, ErrLineageMismatch) {
		t.Fatalf("other lineage: want ErrLineageMismatch, got %v", err)
	}
}

func TestReadNamesCorruptFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewFileStore(dir).Read()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "state.json")) {
		t.Fatalf("want an error naming the file, got %v", err)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	st := NewFileStore(dir)
	info, err := st.Lock("apply")
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Lock("plan")
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.Info.ID != info.ID {
		t.Fatalf("second lock: want LockedError with ID %s, got %v", info.ID, err)
	}
	if err := st.Unlock("wrong"); !errors.Is(err, ErrLockMismatch) {
		t.Fatalf("unlock with wrong ID: %v", err)
	}
	if err := st.Unlock(info.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lock("apply"); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
}

func TestLockTakesOverStaleLockOfDeadProcess(t *testing.T) {
	dir := t.TempDir()
	st := NewFileStore(dir)
	host, _ := os.Hostname()
	dead := LockInfo{ID: "dead", Operation: "apply", Hostname: host, PID: 1 << 22, Who: "x@" + host} // above pid_max
	b, _ := json.Marshal(dead)
	if err := os.WriteFile(filepath.Join(dir, "lock.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := st.Lock("apply")
	if err != nil {
		t.Fatalf("stale lock of a dead process should be taken over: %v", err)
	}
	if info.Replaced != "dead" { // the host leases of that run are taken over too
		t.Errorf("Replaced = %q, want the dead run's ID", info.Replaced)
	}
}

// A run that could not release its lease on every host is named to the
// next run from this folder, which may take those leases over; a run that
// released everything leaves nothing to take over.
func TestLockNamesAnUnreleasedRun(t *testing.T) {
	st := NewFileStore(t.TempDir())
	first, err := st.Lock("apply")
	if err != nil {
		t.Fatal(err)
	}
	if first.Replaced != "" {
		t.Errorf("first run replaces %q", first.Replaced)
	}
	if err := st.NoteUnreleased(first.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.Unlock(first.ID); err != nil {
		t.Fatal(err)
	}
	second, err := st.Lock("apply")
	if err != nil {
		t.Fatal(err)
	}
	if second.Replaced != first.ID {
		t.Errorf("second run replaces %q, want %q", second.Replaced, first.ID)
	}
	if err := st.ClearUnreleased(); err != nil {
		t.Fatal(err)
	}
	st.Unlock(second.ID)
	if third, err := st.Lock("apply"); err != nil || third.Replaced != "" {
		t.Errorf("after a clean release: replaces %q, %v", third.Replaced, err)
	}
}

func TestLockOfOtherMachineIsKeptAndForceUnlock(t *testing.T) {
	dir := t.TempDir()
	st := NewFileStore(dir)
	other := LockInfo{ID: "remote", Operation: "apply", Hostname: "elsewhere", PID: 1, Who: "ci@elsewhere"}
	b, _ := json.Marshal(other)
	if err := os.WriteFile(filepath.Join(dir, "lock.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lock("apply"); !errors.Is(err, ErrLocked) {
		t.Fatalf("want ErrLocked, got %v", err)
	}
	if err := st.ForceUnlock("remote"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lock("apply"); err != nil {
		t.Fatal(err)
	}
}

func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{
		{Run: "r1", Step: "a", Status: StepStarted},
		{Run: "r1", Step: "a", Status: StepDone},
		{Run: "r2", Step: "a", Status: StepStarted},
		{Run: "r2", Step: "a", Status: StepDone},
		{Run: "r2", Step: "b", Status: StepStarted},
	} {
		if err := j.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	// A torn last line, as left by kill -9 during a write.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"run":"r2","step":"c","sta`)
	f.Close()

	entries, err := ReadJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 {
		t.Fatalf("want 5 entries, got %d", len(entries))
	}
	run, complete := LastRun(entries)
	if len(run) != 3 || complete {
		t.Fatalf("last run: %d entries, complete=%v; want 3, false", len(run), complete)
	}
}

func TestClone(t *testing.T) {
	s := New("x")
	s.SetComponent("h", "1.2.3.4", "etcd", ComponentState{Version: "1"})
	c := s.Clone()
	c.SetComponent("h", "1.2.3.4", "etcd", ComponentState{Version: "2"})
	if got, _ := s.Component("h", "etcd"); got.Version != "1" {
		t.Fatal("Clone shares component maps")
	}
}

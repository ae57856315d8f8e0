package state

import (
	"os"
	"path/filepath"
	"testing"
)

// readDir returns every file of dir with its bytes.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func writeN(t *testing.T, f *FileStore, s *State, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := f.Write(s); err != nil {
			t.Fatal(err)
		}
	}
}

// A state.json lost and started again, in a new lineage or in the same one
// from serial 0, never overwrites a backup: every file is there byte for
// byte, and the new backups get names of their own.
func TestBackupsAreNeverOverwritten(t *testing.T) {
	f := NewFileStore(t.TempDir())
	old := New("c")
	writeN(t, f, old, 4) // serials 1..4; backups 1..3
	backups := filepath.Join(f.Dir, backupDir)
	before := readDir(t, backups)
	if len(before) != 3 {
		t.Fatalf("backups: %v", before)
	}

	for _, next := range []*State{New("c"), {FormatVersion: FormatVersion, Lineage: old.Lineage, Cluster: "other", Hosts: map[string]HostState{}}} {
		if err := os.Remove(filepath.Join(f.Dir, stateFile)); err != nil {
			t.Fatal(err)
		}
		writeN(t, f, next, 4)
		after := readDir(t, backups)
		for name, b := range before {
			if after[name] != b {
				t.Errorf("backup %s changed or went away", name)
			}
		}
		if len(after) != len(before)+3 {
			t.Errorf("want 3 new backups, have %d files: %v", len(after), keys(after))
		}
		before = after
	}
	// The same bytes again are the backup already made, not a new file.
	os.Remove(filepath.Join(f.Dir, stateFile))
	writeN(t, f, &State{FormatVersion: FormatVersion, Lineage: old.Lineage, Cluster: "other", Hosts: map[string]HostState{}}, 4)
	if after := readDir(t, backups); len(after) != len(before) {
		t.Errorf("identical backups were copied again: %v", keys(after))
	}
}

// Pruning keeps f.Backups of the current lineage and never touches
// another lineage's backups.
func TestPruneKeepsOtherLineages(t *testing.T) {
	f := NewFileStore(t.TempDir())
	f.Backups = 2
	old := New("c")
	writeN(t, f, old, 3) // backups 1, 2
	backups := filepath.Join(f.Dir, backupDir)
	before := readDir(t, backups)
	os.Remove(filepath.Join(f.Dir, stateFile))
	cur := New("c")
	writeN(t, f, cur, 6) // backups 1..5 of cur, 2 kept
	after := readDir(t, backups)
	for name, b := range before {
		if after[name] != b {
			t.Errorf("backup %s of the other lineage was pruned", name)
		}
	}
	names, err := f.backupsOf(cur.Lineage)
	if err != nil || len(names) != 2 || names[0].serial != 4 || names[1].serial != 5 {
		t.Fatalf("kept of the current lineage: %+v %v", names, err)
	}
	if n, err := f.MaxBackupSerial(cur.Lineage); n != 5 || err != nil {
		t.Errorf("MaxBackupSerial = %d, %v", n, err)
	}
	if n, err := f.MaxBackupSerial(old.Lineage); n != 2 || err != nil {
		t.Errorf("MaxBackupSerial(old) = %d, %v", n, err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSHA256FilesLeavesOutMissing(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	if err := os.WriteFile(a, []byte("alpha"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache.json")
	got := SHA256Files([]string{a, filepath.Join(dir, "missing")}, cache)
	if len(got) != 1 || got[a] != "8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8" {
		t.Errorf("got %v", got)
	}
	if _, err := os.Stat(cache); err != nil {
		t.Errorf("no cache written: %v", err)
	}
}

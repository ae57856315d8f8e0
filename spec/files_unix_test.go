//go:build unix

package spec

import (
	"path/filepath"
	"syscall"
	"testing"
)

// A FIFO in the spec folder is refused without opening it (opening would
// wait for a writer forever).
func TestFIFOIsRefused(t *testing.T) {
	dir := t.TempDir()
	writeSpec(t, dir, map[string]string{"c.hcl": minimal})
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.hcl"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	c, diags := Load(dir, VarInputs{Env: testEnv()})
	if got, want := errorsOf(diags), "- Not a regular file: pipe.hcl: not a regular file (a FIFO)."; c != nil || got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	c, diags = Load(t.TempDir(), VarInputs{Env: testEnv(), Args: []VarArg{{File: true, Value: filepath.Join(dir, "pipe.hcl")}}})
	if got, want := errorsOf(diags), "- Not a regular file: "+filepath.Join(dir, "pipe.hcl")+": not a regular file (a FIFO)."; c != nil || got != want {
		t.Errorf("-var-file FIFO: got %s\nwant %s", got, want)
	}
}

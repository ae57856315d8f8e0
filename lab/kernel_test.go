package lab

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRaiseKernelLimits(t *testing.T) {
	dir := t.TempDir()
	write := func(p, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("fs/inotify/max_user_instances", "128\n")
	write("fs/inotify/max_user_watches", "2000000\n") // above the minimum: left alone
	var out bytes.Buffer
	if err := raiseKernelLimits(dir, &out); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(dir, p))
		return strings.TrimSpace(string(b))
	}
	if got := read("fs/inotify/max_user_instances"); got != "8192" {
		t.Errorf("max_user_instances = %s, want 8192", got)
	}
	if got := read("fs/inotify/max_user_watches"); got != "2000000" {
		t.Errorf("max_user_watches = %s, want it left at 2000000", got)
	}
	if want := "lab: raised fs.inotify.max_user_instances from 128 to 8192"; !strings.Contains(out.String(), want) || strings.Contains(out.String(), "watches") {
		t.Errorf("output %q, want only %q", out.String(), want)
	}

	write("fs/inotify/max_user_watches", "lots")
	if err := raiseKernelLimits(dir, &out); err == nil || !strings.Contains(err.Error(), `max_user_watches: not a number: "lots"`) {
		t.Errorf("garbage in a limit: %v", err)
	}
}

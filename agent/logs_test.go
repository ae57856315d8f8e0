package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRotateLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etcd.log")
	// A writer holding the file open with O_APPEND, like a component.
	w, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for gen := 1; gen <= 5; gen++ {
		fmt.Fprintf(w, "%s\n", strings.Repeat(fmt.Sprint(gen), 99))
		rotated, err := rotateLog(path, 50, 3)
		if err != nil || !rotated {
			t.Fatalf("rotation %d: %v %v", gen, rotated, err)
		}
	}
	if rotated, err := rotateLog(path, 50, 3); rotated || err != nil {
		t.Fatalf("an empty log rotated: %v %v", rotated, err)
	}
	for i, want := range map[string]string{"": "", ".1": "5", ".2": "4", ".3": "3"} {
		b, err := os.ReadFile(path + i)
		if err != nil {
			t.Fatal(err)
		}
		if want != "" && string(b) != strings.Repeat(want, 99)+"\n" || want == "" && len(b) != 0 {
			t.Errorf("%s = %q", path+i, b)
		}
	}
	if _, err := os.Stat(path + ".4"); !os.IsNotExist(err) {
		t.Errorf(".4 kept: %v", err)
	}
	// The writer continues at the start of the truncated file.
	fmt.Fprintln(w, "after")
	if b, _ := os.ReadFile(path); string(b) != "after\n" {
		t.Errorf("after rotation the log holds %q", b)
	}
}

func TestComponentLogRotatedWhileRunning(t *testing.T) {
	e := newTestEnv(t)
	u := sleeper("chatty")
	u.Args = []string{"-c", `i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.005; done`}
	e.install(u, 1)
	e.runAgent(func(o *Options) { o.RotateSize = 400; o.RotateKeep = 2; o.RotateEvery = 20 * time.Millisecond })
	st := e.waitFor("chatty", "rotated twice", func(ComponentStatus) bool {
		_, err := os.Stat(e.p.LogFile("chatty") + ".2")
		return err == nil
	})
	// Still the same process, still writing into the live file.
	e.waitFor("chatty", "writing after rotation", func(s ComponentStatus) bool {
		lines, _ := TailLines(e.p.LogFile("chatty"), 1)
		return s.PID == st.PID && len(lines) == 1 && strings.HasPrefix(lines[0], "line ")
	})
	if _, err := os.Stat(e.p.LogFile("chatty") + ".3"); !os.IsNotExist(err) {
		t.Errorf("kept more than 2 rotated files: %v", err)
	}
	if fi, err := os.Stat(e.p.LogFile("chatty")); err != nil || fi.Size() > 50_000 {
		t.Errorf("live log not kept small: %v %v", fi.Size(), err)
	}
}

func TestTailLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	var b strings.Builder
	for i := 1; i <= 20000; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	got, err := TailLines(path, 3)
	if err != nil || strings.Join(got, "|") != "line 19998|line 19999|line 20000" {
		t.Fatalf("tail 3: %q %v", got, err)
	}
	got, _ = TailLines(path, 20001)
	if len(got) != 20000 || got[0] != "line 1" {
		t.Fatalf("tail beyond the start: %d lines, first %q", len(got), got[0])
	}
	os.WriteFile(path, []byte("no newline at end"), 0o644)
	if got, _ := TailLines(path, 5); len(got) != 1 || got[0] != "no newline at end" {
		t.Fatalf("partial line: %q", got)
	}
	os.WriteFile(path, nil, 0o644)
	if got, _ := TailLines(path, 5); len(got) != 0 {
		t.Fatalf("empty file: %q", got)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestFollowLogAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.log")
	w, _ := openLog(path)
	defer w.Close()
	fmt.Fprintln(w, "old")
	fi, _ := os.Stat(path)
	var out lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- FollowLog(ctx, path, fi.Size(), &out, 5*time.Millisecond) }()
	waitOut := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for out.String() != want {
			if time.Now().After(deadline) {
				t.Fatalf("followed %q, want %q", out.String(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	fmt.Fprintln(w, "one")
	waitOut("one\n")
	if _, err := rotateLog(path, 0, 3); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "two")
	waitOut("one\ntwo\n")
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("follow ended with %v", err)
	}
}

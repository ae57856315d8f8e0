package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/state"
)

// confirmResult runs confirm and fails the test if it does not come back
// within a few seconds.
func confirmResult(t *testing.T, stop <-chan struct{}, stdin io.Reader, mode plan.Mode) (bool, string, error) {
	t.Helper()
	var out bytes.Buffer
	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		ok, err := confirm(context.Background(), stop, stdin, &out, mode)
		done <- result{ok, err}
	}()
	select {
	case r := <-done:
		return r.ok, out.String(), r.err
	case <-time.After(5 * time.Second):
		t.Fatal("confirm did not return")
		return false, "", nil
	}
}

// `apply </dev/null` and `apply </dev/zero`: character devices, but no
// terminal. Nothing is read; the error says what to do.
func TestConfirmRefusesInputThatIsNotATerminal(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	inputs := map[string]io.Reader{"a pipe": pr, "a reader": strings.NewReader("yes\n")}
	for _, dev := range []string{"/dev/null", "/dev/zero"} {
		f, err := os.Open(dev)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		inputs[dev] = f
	}
	for name, in := range inputs {
		for _, mode := range []plan.Mode{plan.ModeApply, plan.ModeDestroy} {
			ok, out, err := confirmResult(t, nil, in, mode)
			if ok || err == nil {
				t.Fatalf("%s, %s: approved=%v err=%v", name, mode, ok, err)
			}
			for _, want := range []string{string(mode) + " needs approval", "not a terminal", "-auto-approve"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %q does not contain %q", name, err, want)
				}
			}
			if out != "" {
				t.Errorf("%s: prompted %q without a terminal", name, out)
			}
		}
	}
}

// zeros is an endless stream of NUL bytes that counts what is read.
type zeros struct{ n int }

func (z *zeros) Read(p []byte) (int, error) {
	clear(p)
	z.n += len(p)
	return len(p), nil
}

func TestReadApproval(t *testing.T) {
	tests := []struct {
		in   string
		yes  bool
		fail string
	}{
		{in: "yes\n", yes: true},
		{in: "  yes \r\n", yes: true},
		{in: "yes", yes: true}, // typed, then Ctrl-D
		{in: "no\n"},
		{in: "\n"},
		{in: "yesyes\n"},
		{in: "", fail: "no answer to the approval was given (the input ended), so nothing was applied: answer yes at the prompt, or pass -auto-approve"},
		{in: "   ", fail: "no answer"},
		{in: strings.Repeat("y", maxAnswer) + "\n", fail: "longer than 4096 bytes"},
	}
	for _, tt := range tests {
		yes, err := readApproval(strings.NewReader(tt.in), plan.ModeApply)
		switch {
		case tt.fail != "" && (err == nil || !strings.Contains(err.Error(), tt.fail)):
			t.Errorf("%.20q: error %v, want one containing %q", tt.in, err, tt.fail)
		case tt.fail == "" && (err != nil || yes != tt.yes):
			t.Errorf("%.20q: %v, %v; want %v", tt.in, yes, err, tt.yes)
		}
	}

	// An endless line is not read to its end.
	z := &zeros{}
	yes, err := readApproval(z, plan.ModeDestroy)
	if yes || err == nil || !strings.Contains(err.Error(), "nothing was destroyed") {
		t.Fatalf("endless input: %v, %v", yes, err)
	}
	if z.n > 2*maxAnswer {
		t.Fatalf("read %d bytes of an endless answer", z.n)
	}
}

// openPTY returns both ends of a new pseudo-terminal.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	go io.Copy(io.Discard, m) // the echo
	return m, s
}

// On a terminal: the answer, end of input (Ctrl-D) and Ctrl-C at the
// prompt.
func TestConfirmOnATerminal(t *testing.T) {
	tests := []struct {
		typed string
		yes   bool
		fail  string
	}{
		{typed: "yes\n", yes: true},
		{typed: "no\n"},
		{typed: "\x04", fail: "no answer to the approval was given"}, // Ctrl-D
	}
	for _, tt := range tests {
		m, tty := openPTY(t)
		if _, err := m.Write([]byte(tt.typed)); err != nil {
			t.Fatal(err)
		}
		yes, out, err := confirmResult(t, nil, tty, plan.ModeApply)
		if !strings.Contains(out, "Only 'yes' will be accepted") {
			t.Errorf("prompt %q", out)
		}
		switch {
		case tt.fail != "" && (err == nil || !strings.Contains(err.Error(), tt.fail) || !strings.Contains(err.Error(), "-auto-approve")):
			t.Errorf("%q: error %v, want one containing %q", tt.typed, err, tt.fail)
		case tt.fail == "" && (err != nil || yes != tt.yes):
			t.Errorf("%q: %v, %v; want %v", tt.typed, yes, err, tt.yes)
		}
	}

	// Nothing typed, then Ctrl-C: a refusal, at once.
	_, tty := openPTY(t)
	stop := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { close(stop) })
	if yes, _, err := confirmResult(t, stop, tty, plan.ModeDestroy); yes || err != nil {
		t.Fatalf("Ctrl-C at the prompt: %v, %v", yes, err)
	}
}

// The lock of a run whose approval is not given is released (and the state
// folder a destroy made for it removed).
func TestLockReleasedWhenApprovalFails(t *testing.T) {
	devnull, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, mode := range []plan.Mode{plan.ModeApply, plan.ModeDestroy} {
		dir := t.TempDir() + "/.clusterctl"
		store := state.NewFileStore(dir)
		var stderr bytes.Buffer
		err := func() error {
			lock, err := takeLock(context.Background(), &apply.Session{Store: store}, mode, &stderr)
			if err != nil {
				return err
			}
			defer lock.release(&stderr)
			if _, held, _ := store.ReadLock(); !held {
				t.Fatal("no lock taken")
			}
			_, err = confirm(context.Background(), nil, devnull, io.Discard, mode)
			return err
		}()
		if err == nil || !strings.Contains(err.Error(), "-auto-approve") {
			t.Fatalf("%s: %v", mode, err)
		}
		if stderr.Len() > 0 {
			t.Errorf("%s: %s", mode, stderr.String())
		}
		if _, held, err := store.ReadLock(); held || err != nil {
			t.Fatalf("%s: lock still held (%v)", mode, err)
		}
		if _, err := os.Stat(dir); mode == plan.ModeDestroy && !os.IsNotExist(err) {
			t.Errorf("destroy left the empty state folder: %v", err)
		}
		if info, err := store.Lock("apply"); err != nil {
			t.Fatalf("%s: the next run cannot lock: %v", mode, err)
		} else {
			store.Unlock(info.ID)
		}
	}
}

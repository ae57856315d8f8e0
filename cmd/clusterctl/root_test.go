package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNormalizeArgs(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{[]string{"-chdir=x", "validate"}, []string{"--chdir=x", "validate"}},
		{[]string{"apply", "-auto-approve"}, []string{"apply", "--auto-approve"}},
		{[]string{"--chdir", "x"}, []string{"--chdir", "x"}},
		{[]string{"kubeconfig", "-o", "f"}, []string{"kubeconfig", "-o", "f"}},
		{[]string{"ssh", "h", "--", "-la"}, []string{"ssh", "h", "--", "-la"}},
		{[]string{"-1"}, []string{"-1"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, normalizeArgs(tt.in)); diff != "" {
			t.Errorf("normalizeArgs(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"version"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "clusterctl ") {
		t.Fatalf("version output %q", out.String())
	}
}

func TestUnknownCommandFails(t *testing.T) {
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"no-such-command"}, &out, &errb); err == nil {
		t.Fatal("want an error for an unknown command")
	}
}

// A command that only groups others fails on an argument that names none
// of them, exit 1, instead of printing its help and exiting 0.
func TestUnknownSubcommandFails(t *testing.T) {
	for _, args := range [][]string{{"bundle", "garbage"}, {"lab", "garbage"}, {"agent", "garbage"}, {"no-such-command"}, {"bundle", "lst"}} {
		var out, errb bytes.Buffer
		err := Run(context.Background(), args, &out, &errb)
		parent := strings.TrimSpace("clusterctl " + strings.Join(args[:len(args)-1], " "))
		want := `unknown command "` + args[len(args)-1] + `" for "` + parent + `"`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %s", args, err, want)
		}
		if code := exitCode(err, &errb); code != 1 {
			t.Errorf("%q: exit code %d", args, code)
		}
		if out.Len() > 0 {
			t.Errorf("%q printed %q", args, out.String())
		}
	}
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"bundle", "lst"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "did you mean list?") {
		t.Errorf("bundle lst: %v", err)
	}
	// Without an argument the group prints its help, as before.
	for _, args := range [][]string{{"bundle"}, {"lab"}, {"agent"}, {}} {
		var out, errb bytes.Buffer
		if err := Run(context.Background(), args, &out, &errb); err != nil || !strings.Contains(out.String(), "Available Commands") {
			t.Errorf("%q: %v, printed %q", args, err, out.String())
		}
	}
}

// -chdir takes a value, so `clusterctl -chdir validate` makes "validate"
// the folder and leaves no command.
func TestChdirSwallowingTheCommand(t *testing.T) {
	for _, args := range [][]string{{"-chdir", "validate"}, {"--chdir", "validate"}, {"-chdir=plan"}, {"--chdir", "help"}} {
		var out, errb bytes.Buffer
		err := Run(context.Background(), args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "-chdir took") || !strings.Contains(err.Error(), "no command is left") {
			t.Errorf("%q: error %v", args, err)
		}
	}
	// A folder that is no command's name, and no command: the help.
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"-chdir", t.TempDir()}, &out, &errb); err != nil || !strings.Contains(out.String(), "Usage:") {
		t.Errorf("-chdir DIR alone: %v, %q", err, out.String())
	}
	// A folder named like a command, then a command: the folder is meant.
	if err := Run(context.Background(), []string{"-chdir", "validate", "version"}, &out, &errb); err != nil {
		t.Errorf("-chdir validate version: %v", err)
	}
}

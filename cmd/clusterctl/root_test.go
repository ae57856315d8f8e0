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

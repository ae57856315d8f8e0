package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/components"
)

// Out-of-range flag values are refused before the spec is read, naming
// the flag and what it takes.
func TestFlagRanges(t *testing.T) {
	dir := t.TempDir() // no spec: a check that comes late would fail on that instead
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-parallelism", "0"}, "-parallelism 0 is out of range: it must be 1 or more"},
		{[]string{"apply", "-parallelism=-4"}, "-parallelism -4 is out of range: it must be 1 or more"},
		{[]string{"plan", "-parallelism", "0"}, "-parallelism 0 is out of range"},
		{[]string{"destroy", "-parallelism", "-1"}, "-parallelism -1 is out of range"},
		{[]string{"rollback", "kubelet", "-parallelism", "0"}, "-parallelism 0 is out of range"},
		{[]string{"status", "-parallelism", "0"}, "-parallelism 0 is out of range"},
		{[]string{"apply", "-gate-timeout=-1s"}, "-gate-timeout -1s is out of range: it must be a positive duration such as 5m, or 0 for the spec's upgrade.gate_timeout"},
		{[]string{"destroy", "--gate-timeout", "-2m"}, "-gate-timeout -2m0s is out of range"},
		{[]string{"logs", "-n", "-5", "cp-1", "kubelet"}, "-n/--lines -5 is out of range: it must be 0 or more"},
		{[]string{"logs", "--lines=-1", "cp-1", "kubelet"}, "-n/--lines -1 is out of range"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		err := Run(context.Background(), append([]string{"-chdir", dir}, tt.args...), &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one containing %q", tt.args, err, tt.want)
		}
		if code := exitCode(err, &errb); code != 1 {
			t.Errorf("%q: exit code %d", tt.args, code)
		}
	}
	for _, o := range []clusterOptions{{parallelism: 1}, {parallelism: 500, gateTimeout: 5 * time.Minute}} {
		if err := o.check(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// logs -n 0 prints no earlier line (with -f, only what is appended); the
// agent alone would take 0 for its default of 100.
func TestFollowLogsLines(t *testing.T) {
	p := testPaths(t)
	if err := os.MkdirAll(p.LogDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.LogFile("web"), []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ac := components.AgentClient{H: &lineHost{t: t, p: p}}
	for lines, want := range map[int]string{0: "", 2: "two\nthree\n", 100: "one\ntwo\nthree\n"} {
		var out bytes.Buffer
		if err := followLogs(context.Background(), ac, "web", lines, false, time.Millisecond, &out); err != nil || out.String() != want {
			t.Errorf("-n %d: %q, %v; want %q", lines, out.String(), err, want)
		}
	}
}

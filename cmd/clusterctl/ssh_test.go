package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/spec"
	"github.com/google/go-cmp/cmp"
)

func TestSSHArgs(t *testing.T) {
	h := spec.Host{Name: "w-1", Address: "10.0.0.21", Port: 2222, User: "admin", SSH: spec.SSH{
		IdentityFiles: []string{"/k/id"}, KnownHostsFile: "/k/known_hosts", HostKeyPolicy: spec.HostKeyAcceptNew,
		UseAgent: true, ConnectTimeout: 5 * time.Second,
		Bastion: spec.Bastion{Address: "jump.example.org", Port: 2200, User: "ops"},
	}}
	want := []string{"ssh", "-p", "2222", "-i", "/k/id", "-o", "UserKnownHostsFile=/k/known_hosts",
		"-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=5", "-J", "ops@jump.example.org:2200",
		"admin@10.0.0.21", "--", "uptime"}
	got, err := sshArgs(h, []string{"uptime"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if got := shellLine([]string{"ssh", "-o", "X=a b", "it's"}); got != `ssh -o 'X=a b' 'it'\''s'` {
		t.Fatalf("shellLine = %s", got)
	}
}

// Paths with spaces (and '%', which ssh expands) reach ssh as one path
// each. UserKnownHostsFile is a list split at spaces, so an unquoted
// "/my keys/known_hosts" would be two files, "/my" and "keys/known_hosts".
func TestSSHArgsPathsWithSpaces(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my  keys") // two spaces: a split shows
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	id := filepath.Join(dir, "id ed25519")
	pct := filepath.Join(dir, "id%h")
	kh := filepath.Join(dir, "known hosts 100%")
	for _, p := range []string{id, pct, kh} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := spec.Host{Name: "w-1", Address: "10.0.0.21", Port: 22, User: "admin", SSH: spec.SSH{
		IdentityFiles: []string{id, pct}, KnownHostsFile: kh, UseAgent: true}}
	argv, err := sshArgs(h, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ssh", "-p", "22", "-i", id, "-o", `IdentityFile="` + dir + `/id%%h"`,
		"-o", `UserKnownHostsFile="` + dir + `/known hosts 100%%"`, "-o", "StrictHostKeyChecking=yes", "admin@10.0.0.21"}
	if diff := cmp.Diff(want, argv); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}

	// What OpenSSH makes of them: -G prints the configuration and exits.
	// It shows known_hosts files expanded, identity files as given.
	bin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no OpenSSH client to check the parse with")
	}
	out, err := exec.Command(bin, append([]string{"-F", "/dev/null", "-G"}, argv[1:]...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh -G: %v\n%s", err, out)
	}
	var ids []string
	var hosts string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "identityfile "); ok {
			ids = append(ids, v)
		}
		if v, ok := strings.CutPrefix(l, "userknownhostsfile "); ok {
			hosts = v
		}
	}
	if diff := cmp.Diff([]string{id, dir + "/id%%h"}, ids); diff != "" {
		t.Errorf("ssh's identity files (-want +got):\n%s", diff)
	}
	if hosts != kh {
		t.Errorf("ssh's known_hosts files: %q, want %q", hosts, kh)
	}
}

func TestSSHArgsRefusesPathsSSHWouldMangle(t *testing.T) {
	tests := []struct {
		ssh  spec.SSH
		want string
	}{
		{spec.SSH{KnownHostsFile: `/k/"quoted"`}, `known_hosts file "/k/\"quoted\"" holds a double quote or a backslash`},
		{spec.SSH{KnownHostsFile: `/k/back\slash`}, "double quote or a backslash"},
		{spec.SSH{KnownHostsFile: "/k/${HOME}/kh"}, "expands as an environment variable"},
		{spec.SSH{IdentityFiles: []string{"/k/${X}"}}, `identity file "/k/${X}" holds "${"`},
		{spec.SSH{KnownHostsFile: "/k/kh\nx"}, "control characters"},
		{spec.SSH{IdentityFiles: []string{"/k/id%\tx"}}, "control characters"},
		{spec.SSH{IdentityFiles: []string{`/k/100%"`}}, "double quote or a backslash"},
	}
	for _, tt := range tests {
		h := spec.Host{Name: "w-1", Address: "10.0.0.21", Port: 22, User: "admin", SSH: tt.ssh}
		if _, err := sshArgs(h, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want one containing %q", tt.ssh, err, tt.want)
		}
	}
	// A quote or a backslash is fine with -i: ssh takes that path as is.
	h := spec.Host{Name: "w-1", Address: "10.0.0.21", Port: 22, User: "admin", SSH: spec.SSH{IdentityFiles: []string{`/k/"id"\x`}}}
	if argv, err := sshArgs(h, nil); err != nil || argv[4] != `/k/"id"\x` {
		t.Errorf("identity file with quotes: %q, %v", argv, err)
	}
}

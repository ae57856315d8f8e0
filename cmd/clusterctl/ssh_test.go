package main

import (
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
	if diff := cmp.Diff(want, sshArgs(h, []string{"uptime"})); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if got := shellLine([]string{"ssh", "-o", "X=a b", "it's"}); got != `ssh -o 'X=a b' 'it'\''s'` {
		t.Fatalf("shellLine = %s", got)
	}
}

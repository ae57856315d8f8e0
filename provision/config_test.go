package provision

import (
	"os"
	"os/user"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeSSHConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveFromSSHConfig(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	conf := writeSSHConfig(t, `
Host web1
  HostName 192.0.2.10
  User deploy
  Port 2222
  IdentityFile ~/.ssh/id_%h_%r
  IdentityFile /keys/second
  ProxyJump jumpuser@bastion.example:2200,hop2
  UserKnownHostsFile ~/kh1 /etc/kh2

Host hop2
  HostName 198.51.100.7
  User hopper

Host *
  User fallback
`)
	e, err := Config{Host: "web1", SSHConfigFile: conf}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if e.host != "192.0.2.10" || e.port != 2222 || e.user != "deploy" || e.addr() != "192.0.2.10:2222" {
		t.Errorf("resolved %s@%s:%d", e.user, e.host, e.port)
	}
	wantIDs := []string{filepath.Join(me.HomeDir, ".ssh", "id_192.0.2.10_deploy"), "/keys/second"}
	if d := cmp.Diff(wantIDs, e.identityFiles); d != "" {
		t.Errorf("identity files (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{filepath.Join(me.HomeDir, "kh1"), "/etc/kh2"}, e.knownHosts); d != "" {
		t.Errorf("known hosts (-want +got):\n%s", d)
	}
	if len(e.jumps) != 2 {
		t.Fatalf("jumps: %d, want 2", len(e.jumps))
	}
	j0, j1 := e.jumps[0], e.jumps[1]
	if j0.user != "jumpuser" || j0.addr() != "bastion.example:2200" {
		t.Errorf("jump 0: %s@%s", j0.user, j0.addr())
	}
	if j1.user != "hopper" || j1.addr() != "198.51.100.7:22" {
		t.Errorf("jump 1: %s@%s (its ssh_config entry should apply)", j1.user, j1.addr())
	}

	// Explicit fields win over ssh_config, and an explicit empty chain
	// disables its ProxyJump.
	e, err = Config{Host: "web1", User: "admin", Port: 22, IdentityFiles: []string{"/k"}, ProxyJump: []Config{}, SSHConfigFile: conf}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if e.user != "admin" || e.port != 22 || e.host != "192.0.2.10" || len(e.jumps) != 0 || !e.explicitIDs {
		t.Errorf("explicit fields: %s@%s:%d, %d jumps, explicit ids %v", e.user, e.host, e.port, len(e.jumps), e.explicitIDs)
	}

	// A host that no Host block names gets the wildcard's values.
	e, err = Config{Host: "other", SSHConfigFile: conf}.resolve()
	if err != nil || e.user != "fallback" || e.port != 22 || e.host != "other" {
		t.Errorf("wildcard: %+v, %v", e, err)
	}
}

func TestResolveDefaultsWithoutSSHConfig(t *testing.T) {
	me, _ := user.Current()
	e, err := Config{Host: "10.0.0.1", SSHConfigFile: "none"}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if e.user != me.Username || e.port != 22 || e.explicitIDs || len(e.identityFiles) != 3 {
		t.Errorf("defaults: %+v", e)
	}
	if _, err := (Config{SSHConfigFile: "none"}).resolve(); err == nil {
		t.Error("a Config without Host resolved")
	}
}

func TestResolveJumpInheritsSettings(t *testing.T) {
	cfg := Config{
		Host: "target", IdentityFiles: []string{"/target-key"}, KnownHostsFiles: []string{"/kh"},
		HostKeyPolicy: HostKeyAcceptNew, SSHConfigFile: "none",
		ProxyJump: []Config{{Host: "bastion", User: "jump"}, {Host: "hop", IdentityFiles: []string{"/hop-key"}}},
	}
	e, err := cfg.resolve()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"/target-key"}, e.jumps[0].identityFiles); d != "" {
		t.Errorf("jump 0 identities:\n%s", d)
	}
	if d := cmp.Diff([]string{"/hop-key"}, e.jumps[1].identityFiles); d != "" {
		t.Errorf("jump 1 keeps its own identity:\n%s", d)
	}
	if e.jumps[0].cfg.HostKeyPolicy != HostKeyAcceptNew || e.jumps[0].knownHosts[0] != "/kh" || e.jumps[0].user != "jump" {
		t.Errorf("jump 0 did not inherit policy/known_hosts: %+v", e.jumps[0])
	}
}

func TestSSHConfigErrorsNameTheFile(t *testing.T) {
	bad := writeSSHConfig(t, "Host x\n  Port notanumber\n")
	_, err := Config{Host: "x", SSHConfigFile: bad}.resolve()
	if err == nil {
		t.Fatal("bad Port accepted")
	}
	if _, err := (Config{Host: "x", SSHConfigFile: "/nonexistent/ssh_config"}).resolve(); err == nil {
		t.Error("a named ssh_config file that does not exist was ignored")
	}
}

func TestParseProxyJump(t *testing.T) {
	got, err := parseProxyJump("a@b:2200, c ,ssh://d@[2001:db8::1]:22")
	if err != nil {
		t.Fatal(err)
	}
	want := []Config{{User: "a", Host: "b", Port: 2200}, {Host: "c"}, {User: "d", Host: "2001:db8::1", Port: 22}}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b func(string) ([]byte, error)) bool { return a == nil && b == nil })); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	for _, bad := range []string{"", "a,,b", "h:99999"} {
		if _, err := parseProxyJump(bad); err == nil {
			t.Errorf("parseProxyJump(%q) accepted", bad)
		}
	}
}

package apply

import (
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
)

func TestSSHConfigFromSpec(t *testing.T) {
	h := spec.Host{Name: "w-1", Address: "10.0.0.21", Port: 2222, User: "admin", SSH: spec.SSH{
		User: "admin", Port: 2222, IdentityFiles: []string{"/k/id"}, UseAgent: false, KnownHostsFile: "/k/known_hosts",
		HostKeyPolicy: spec.HostKeyAcceptNew, Sudo: true, SudoPasswordEnv: "SUDO_PW", PassphraseEnv: "KEY_PW",
		ConnectTimeout: 7 * time.Second, Bastion: spec.Bastion{Address: "jump", Port: 22, User: "ops"},
	}}
	c := SSHConfig(h)
	if c.Name != "w-1" || c.Host != "10.0.0.21" || c.Port != 2222 || c.User != "admin" || !c.NoAgent || !c.Sudo ||
		c.SudoPasswordEnv != "SUDO_PW" || c.PassphraseEnv != "KEY_PW" || c.HostKeyPolicy != provision.HostKeyAcceptNew ||
		c.ConnectTimeout != 7*time.Second || len(c.KnownHostsFiles) != 1 || c.KnownHostsFiles[0] != "/k/known_hosts" {
		t.Fatalf("config: %+v", c)
	}
	if len(c.ProxyJump) != 1 {
		t.Fatalf("want one jump host, got %+v", c.ProxyJump)
	}
	j := c.ProxyJump[0]
	if j.Host != "jump" || j.User != "ops" || j.Port != 22 || j.PassphraseEnv != "KEY_PW" || j.IdentityFiles[0] != "/k/id" {
		t.Fatalf("jump host: %+v", j)
	}
}

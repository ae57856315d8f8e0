package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/provision/provisiontest"
)

// TestProvisionConformance runs provision's conformance suite against
// OpenSSH on lab hosts: root on cp-1, two sudo users, behind-1 reachable
// only through cp-1, worker-1's port 22 black-holed, cp-1's link cut.
func TestProvisionConformance(t *testing.T) {
	l := upLab(t, Options{ControlPlanes: 1, Workers: 1, Bastion: "cp-1"})
	ctx := context.Background()
	byName := map[string]Host{}
	for _, h := range l.Hosts() {
		byName[h.Name] = h
	}
	target := func(host, user string) provisiontest.Target {
		t.Helper()
		key, err := l.HostKey(host)
		if err != nil {
			t.Fatal(err)
		}
		return provisiontest.Target{
			Addr:         net.JoinHostPort(byName[host].Address, "22"),
			User:         user,
			IdentityFile: l.ClientKeyPath(),
			HostKey:      key,
		}
	}

	pub, err := os.ReadFile(l.ClientKeyPath() + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// Lab hosts share /etc/passwd, /etc/shadow, /etc/sudoers.d and /home
	// with the workstation, so users made here exist on every host.
	suffix := randomSuffix(t)
	nopass := addUser(t, "ccnopw"+suffix, "", "NOPASSWD: ALL", pub)
	password := "pw-" + randomSuffix(t) + randomSuffix(t)
	withpass := addUser(t, "ccpw"+suffix, password, "ALL", pub)

	// SYNs to worker-1's sshd are dropped inside its netns: the port never
	// answers. The rule goes away with the netns.
	worker := l.state.host("worker-1")
	if out, err := exec.Command("ip", "netns", "exec", worker.Netns, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP").CombinedOutput(); err != nil {
		t.Fatalf("black-hole worker-1: %v: %s", err, out)
	}

	provisiontest.RunConformance(t, provisiontest.Env{
		Root:         target("cp-1", "root"),
		Sudo:         target("cp-1", nopass),
		SudoPass:     target("cp-1", withpass),
		SudoPassword: password,
		Bastion:      target("cp-1", "root"),
		Behind:       target("behind-1", "root"),
		Unreachable:  net.JoinHostPort(worker.Address, "22"),
		Cut:          func() error { return l.Cut(ctx, "cp-1") },
		Heal:         func() error { return l.Heal(ctx, "cp-1") },
		TempDir:      "/tmp",
	})
}

func randomSuffix(t *testing.T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// addUser makes a user on the workstation (and so on every lab host) who
// logs in with pub and may sudo per the sudoers rule; password "" leaves
// the account without one. Removed when the test ends.
func addUser(t *testing.T, name, password, rule string, pub []byte) string {
	t.Helper()
	run := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("", "useradd", "--create-home", "--shell", "/bin/bash", name)
	sudoers := filepath.Join("/etc/sudoers.d", "clusterctl-test-"+name)
	t.Cleanup(func() {
		os.Remove(sudoers)
		if out, err := exec.Command("userdel", "--remove", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v: %s", name, err, out)
		}
	})
	if password != "" {
		run(name+":"+password+"\n", "chpasswd")
	} else {
		// "*": no password, but not locked ("!"), which sshd without PAM
		// would refuse even for key logins.
		run("", "usermod", "--password", "*", name)
	}
	if err := os.WriteFile(sudoers, []byte(name+" ALL=(ALL) "+rule+"\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	run("", "visudo", "-c", "-q", "-f", sudoers)
	home := filepath.Join("/home", name)
	run("", "install", "-d", "-m", "0700", "-o", name, "-g", name, filepath.Join(home, ".ssh"))
	keys := filepath.Join(home, ".ssh", "authorized_keys")
	if err := os.WriteFile(keys, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	run("", "chown", name+":"+name, keys)
	return name
}

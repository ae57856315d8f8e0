package provisiontest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestConformanceOpenSSH runs the suite against a real OpenSSH sshd on
// 127.0.0.1 (root, sudo users, cut, unreachable). Jump hosts need separate
// networks, which the lab's hosts provide; here Bastion/Behind stay empty.
func TestConformanceOpenSSH(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: sshd switches users and the sudo tests create OS users")
	}
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		t.Skip("no sshd (scripts/setup.sh installs openssh-server)")
	}
	dir := t.TempDir()
	keyFile, pub := clientKey(t)
	authKeys := filepath.Join(sharedTempDir(t), "authorized_keys")
	if err := os.WriteFile(authKeys, ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
		t.Fatal(err)
	}
	// Two host keys, so the client's choice of host key algorithm matters.
	edPub := hostKeyFile(t, dir, "ed25519")
	hostKeyFile(t, dir, "ecdsa")

	env := Env{TempDir: sharedTempDir(t)}
	np, pw, password := sudoUsers(t)
	env.SudoPassword = password

	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
`, port, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "host_ecdsa"), authKeys)
	cfgFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfgFile)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killChildren(cmd.Process.Pid)
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log:\n%s", logs.String())
		}
	})
	waitListening(t, addr)

	target := func(user string) Target {
		return Target{Addr: addr, User: user, IdentityFile: keyFile, HostKey: edPub}
	}
	env.Root = target("root")
	env.Sudo = target(np.Username)
	env.SudoPass = target(pw.Username)
	// Cut drops every packet to and from sshd's port, like a pulled cable:
	// the client must notice through its keepalives. Without iptables it
	// kills the per-connection sshd processes (children of ours) instead.
	env.Cut = func() error { return killChildren(cmd.Process.Pid) }
	env.Heal = func() error { return nil }
	if _, err := exec.LookPath("iptables"); err == nil {
		rules := [][]string{
			{"INPUT", "-i", "lo", "-p", "tcp", "--dport", strconv.Itoa(port), "-j", "DROP"},
			{"INPUT", "-i", "lo", "-p", "tcp", "--sport", strconv.Itoa(port), "-j", "DROP"},
		}
		var cut bool
		env.Heal = func() error {
			if !cut {
				return nil
			}
			cut = false
			var errs []error
			for _, r := range rules {
				if out, err := exec.Command("iptables", append([]string{"-D"}, r...)...).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("iptables -D: %v: %s", err, out))
				}
			}
			return errors.Join(errs...)
		}
		env.Cut = func() error {
			cut = true
			for _, r := range rules {
				if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
					return fmt.Errorf("iptables -I: %v: %s", err, out)
				}
			}
			return nil
		}
		t.Cleanup(func() { env.Heal() })
	}
	env.Unreachable = blackhole(t)
	RunConformance(t, env)
}

func hostKeyFile(t *testing.T, dir, kind string) ssh.PublicKey {
	t.Helper()
	var priv any
	var err error
	if kind == "ed25519" {
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	} else {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "host_"+kind), pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killChildren kills the direct children of pid, by their ids.
func killChildren(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(string(b)) {
		if child, err := strconv.Atoi(f); err == nil {
			syscall.Kill(child, syscall.SIGKILL)
		}
	}
	return nil
}

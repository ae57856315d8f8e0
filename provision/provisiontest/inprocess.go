package provisiontest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/clusterctl/clusterctl/provision/internal/testserver"
)

// InProcess starts the in-process environment: SSH+SFTP servers on
// 127.0.0.1 with pinned host keys, a bastion, a host reachable only through
// it (its TCP port closes every connection; the bastion reaches it in
// memory), and an address whose SYNs are dropped. As root it also creates
// two real OS users, one with passwordless sudo and one whose sudo needs a
// password, so the real sudo decides; everything is removed when t ends.
// Without root the sudo targets are left empty and those tests skip.
func InProcess(t *testing.T) Env {
	t.Helper()
	keyFile, pub := clientKey(t)
	self, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	users := []testserver.User{{Name: self.Username, AuthorizedKeys: []ssh.PublicKey{pub}}}

	env := Env{TempDir: sharedTempDir(t)}
	var sudoUser, passUser *user.User
	if os.Geteuid() == 0 {
		sudoUser, passUser, env.SudoPassword = sudoUsers(t)
		users = append(users,
			testserver.User{Name: sudoUser.Username, AuthorizedKeys: []ssh.PublicKey{pub}, OS: sudoUser},
			testserver.User{Name: passUser.Username, AuthorizedKeys: []ssh.PublicKey{pub}, OS: passUser})
	} else {
		t.Log("provisiontest: not root, so no OS users for the sudo tests")
	}

	main := start(t, testserver.Options{Users: users})
	target := func(srv *testserver.Server, name string) Target {
		return Target{Addr: srv.Addr(), User: name, IdentityFile: keyFile, HostKey: srv.HostKey()}
	}
	env.Root = target(main, self.Username)
	if sudoUser != nil {
		env.Sudo = target(main, sudoUser.Username)
		env.SudoPass = target(main, passUser.Username)
	}
	env.Cut = func() error { main.Cut(); return nil }
	env.Heal = func() error { main.Heal(); return nil }

	behind := start(t, testserver.Options{Users: users[:1], RefuseTCP: true})
	bastion := start(t, testserver.Options{
		Users: users[:1],
		Forward: func(addr string) (net.Conn, error) {
			if addr != behind.Addr() {
				return nil, fmt.Errorf("bastion forwards only to %s", behind.Addr())
			}
			a, b := net.Pipe()
			go behind.ServeConn(b)
			return a, nil
		},
	})
	env.Bastion = target(bastion, self.Username)
	env.Behind = target(behind, self.Username)
	env.Unreachable = blackhole(t)
	return env
}

func start(t *testing.T, opts testserver.Options) *testserver.Server {
	t.Helper()
	s, err := testserver.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// clientKey writes an unencrypted ed25519 key that every target accepts.
func clientKey(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	pubKey, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "provisiontest")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(pubKey)
	if err != nil {
		t.Fatal(err)
	}
	return file, pub
}

// sharedTempDir is a folder every target user can enter (t.TempDir is 0700).
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "clusterctl-conformance-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sudoUsers creates two OS users and a sudoers drop-in for them, removed
// when t ends. Names are random so parallel runs on one machine don't meet.
func sudoUsers(t *testing.T) (nopass, pass *user.User, password string) {
	t.Helper()
	for _, tool := range []string{"useradd", "userdel", "chpasswd", "sudo", "visudo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("provisiontest needs %s (scripts/setup.sh installs it): %v", tool, err)
		}
	}
	id := randomHex(3)
	names := []string{"cct-np-" + id, "cct-pw-" + id}
	password = "pw-" + randomHex(12)
	var made []*user.User
	for _, name := range names {
		runTool(t, nil, "useradd", "--create-home", "--shell", "/bin/sh", name)
		t.Cleanup(func() { runQuiet(nil, "userdel", "--remove", "--force", name) })
		u, err := user.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, u)
	}
	// Both get a password: OpenSSH refuses key logins to locked accounts.
	runTool(t, strings.NewReader(names[0]+":unused-"+randomHex(12)+"\n"+names[1]+":"+password+"\n"), "chpasswd")

	sudoers := filepath.Join("/etc/sudoers.d", "cct-"+id)
	rules := fmt.Sprintf("%s ALL=(ALL:ALL) NOPASSWD: ALL\n%s ALL=(ALL:ALL) ALL\n", names[0], names[1])
	tmp := sudoers + ".tmp" // sudo ignores names with a dot
	if err := os.WriteFile(tmp, []byte(rules), 0o440); err != nil {
		t.Fatal(err)
	}
	runTool(t, nil, "visudo", "-cqf", tmp)
	if err := os.Rename(tmp, sudoers); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sudoers) })
	return made[0], made[1], password
}

// runTool runs a system tool, retrying while /etc/passwd is locked by a
// parallel run.
func runTool(t *testing.T, stdin *strings.Reader, name string, args ...string) {
	t.Helper()
	var out []byte
	var err error
	for range 20 {
		if out, err = runQuiet(stdin, name, args...); err == nil {
			return
		}
		if !strings.Contains(string(out), "lock") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
}

func runQuiet(stdin *strings.Reader, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		stdin.Seek(0, 0)
		cmd.Stdin = stdin
	}
	return cmd.CombinedOutput()
}

// blackhole returns a loopback address that drops SYNs: a listener with a
// backlog of 0 whose one queue slot is taken and which never accepts. A
// dial there times out like a host whose link is down; it is not refused.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	filler, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("filling the blackhole's queue: %v", err)
	}
	t.Cleanup(func() { filler.Close() })
	return addr
}

package provision

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestErrorClassification(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		err       error
		sentinel  error
		transient bool
	}{
		{refused, ErrRefused, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), ErrTimeout, true},
		{&net.DNSError{Err: "no such host", Name: "typo", IsNotFound: true}, nil, false},
		{&net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, ErrUnreachable, true},
		{errors.New("ssh: something odd"), nil, false},
	}
	for _, tt := range tests {
		got := classifyNetErr(tt.err)
		if IsTransient(got) != tt.transient {
			t.Errorf("%v: transient %v, want %v", tt.err, IsTransient(got), tt.transient)
		}
		if tt.sentinel != nil && !errors.Is(got, tt.sentinel) {
			t.Errorf("%v: not %v", tt.err, tt.sentinel)
		}
		if !errors.Is(got, tt.err) {
			t.Errorf("%v: cause lost", tt.err)
		}
	}
	for _, permanent := range []error{ErrAuth, ErrHostKeyUnknown, ErrHostKeyChanged, ErrSudo} {
		if IsTransient(fmt.Errorf("wrapped: %w", permanent)) {
			t.Errorf("%v is transient", permanent)
		}
	}
	e := &Error{Host: "web1", Addr: "10.0.0.1:22", Step: "connect", Attempts: 3, Err: fmt.Errorf("%w: boom", ErrTimeout)}
	if got, want := e.Error(), "web1 (10.0.0.1:22): connect: timed out: boom (after 3 attempts)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, ErrTimeout) || !IsTransient(e) {
		t.Error("*Error does not unwrap to its cause")
	}
}

func TestQuoteRoundTripsThroughSh(t *testing.T) {
	for _, s := range []string{"", "plain", "with space", "it's", `a"b`, "$HOME `x` \\n", "multi\nline", "-dash", "*"} {
		out, err := exec.Command("sh", "-c", "printf '%s' "+Quote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("Quote(%q) = %s came back as %q, %v", s, Quote(s), out, err)
		}
	}
}

func TestSudoCommandKeepsPasswordOffTheCommandLine(t *testing.T) {
	c := &Client{sudo: sudoPassword, sudoPassword: "hunter2"}
	line, pre := c.command("echo hi", true)
	if strings.Contains(line, "hunter2") || pre != "hunter2\n" {
		t.Errorf("command %q, stdin prefix %q", line, pre)
	}
	if want := "sudo -k -S -p '' -- sh -c 'echo hi'"; line != want {
		t.Errorf("command %q, want %q", line, want)
	}
	if line, pre := c.command("echo hi", false); line != "sh -c 'echo hi'" || pre != "" {
		t.Errorf("unprivileged: %q %q", line, pre)
	}
	c.sudo = sudoNoPassword
	if line, _ := c.command("id", true); line != "sudo -n -- sh -c id" {
		t.Errorf("nopasswd: %q", line)
	}
	if got := c.scrub("x hunter2 y"); got != "x (sensitive) y" {
		t.Errorf("scrub: %q", got)
	}
}

func TestParseFacts(t *testing.T) {
	out := `hostname=node1
os=debian
os_version=12
machine=aarch64
kernel=6.1.0-18-arm64
cgroup_fs=cgroup2fs
pid1=systemd
cpus=4
mem_kb=8000000
swaps=0
capeff=000001ffffffffff
inotify_instances=128
inotify_watches=65536
tool.iptables=/usr/sbin/iptables
tool.ip=/usr/bin/ip
installed.json=eyJ2ZXJzaW9uIjoxfQ==
end=1
`
	f, err := parseFacts([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := Facts{
		Hostname: "node1", OS: "debian", OSVersion: "12", Machine: "aarch64", Arch: "arm64",
		Kernel: "6.1.0-18-arm64", CgroupVersion: 2, SystemdPID1: true, CPUs: 4, MemoryBytes: 8000000 * 1024,
		CapEff: 0x1ffffffffff, Tools: map[string]string{"iptables": "/usr/sbin/iptables", "ip": "/usr/bin/ip"},
		Installed: []byte(`{"version":1}`), InotifyInstances: 128, InotifyWatches: 65536,
	}
	if d := cmp.Diff(want, f); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if !f.HasCap(CapSysResource) || !f.HasTool("ip") || f.HasTool("conntrack") {
		t.Error("HasCap/HasTool")
	}
	if f2, _ := parseFacts([]byte(strings.Replace(out, "capeff=000001ffffffffff", "capeff=0000000000003000", 1))); f2.HasCap(CapSysAdmin) || !f2.HasCap(CapNetAdmin) {
		t.Errorf("capabilities of 0x3000: %x", f2.CapEff)
	}
	if _, err := parseFacts([]byte("hostname=x\n")); err == nil {
		t.Error("truncated output accepted")
	}
	if _, err := parseFacts([]byte(strings.Replace(out, "cpus=4", "cpus=four", 1))); err == nil || !strings.Contains(err.Error(), "cpus") {
		t.Errorf("bad cpus: %v", err)
	}
}

func TestForEachBoundsParallelismAndKeepsGoing(t *testing.T) {
	var running, peak atomic.Int32
	items := []int{0, 1, 2, 3, 4, 5, 6, 7}
	errs := ForEach(context.Background(), items, 3, func(ctx context.Context, i int, v int) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		if v%3 == 0 {
			return fmt.Errorf("item %d failed", v)
		}
		return nil
	})
	if peak.Load() > 3 {
		t.Errorf("%d ran at once, limit 3", peak.Load())
	}
	for i, err := range errs {
		if (i%3 == 0) != (err != nil) {
			t.Errorf("item %d: %v", i, err)
		}
	}
}

func newPub(t *testing.T, rsaKey bool) ssh.PublicKey {
	t.Helper()
	var priv any
	var err error
	if rsaKey {
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s.PublicKey()
}

func TestHostKeyAlgorithmsFollowRecordedKeys(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{"[10.0.0.1]:2222"}, newPub(t, true))
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil { // no final newline
		t.Fatal(err)
	}
	h := &hostKeys{files: []string{kh}, policy: HostKeyAcceptNew, name: "n"}
	algos, err := h.algorithms("10.0.0.1:2222")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}, algos); d != "" {
		t.Errorf("recorded rsa key:\n%s", d)
	}
	if algos, _ := h.algorithms("10.0.0.2:22"); algos[0] != ssh.KeyAlgoED25519 {
		t.Errorf("unknown host: prefer ed25519 first, got %v", algos)
	}

	// accept-new appends on a line of its own even when the file lacks a
	// final newline.
	key := newPub(t, false)
	remote := &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 22}
	if err := h.check("10.0.0.2:22", remote, key); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(kh)
	if want := line + "\n" + knownhosts.Line([]string{"10.0.0.2"}, key) + "\n"; string(b) != want {
		t.Errorf("known_hosts:\n%s\nwant:\n%s", b, want)
	}
	if err := h.check("10.0.0.2:22", remote, newPub(t, false)); !errors.Is(err, ErrHostKeyChanged) {
		t.Errorf("another key after accept-new: %v", err)
	}
}

func TestDialGivesUpSoonOnARefusedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now

	_, err = Dial(context.Background(), Config{Name: "closed", Host: "127.0.0.1", Port: port, SSHConfigFile: "none", ConnectTimeout: time.Minute})
	var pe *Error
	if !errors.As(err, &pe) || !errors.Is(err, ErrRefused) {
		t.Fatalf("want a refused *Error, got %v", err)
	}
	if pe.Attempts != maxRefused {
		t.Errorf("%d attempts, want %d (not a whole connect timeout)", pe.Attempts, maxRefused)
	}
	msg := err.Error()
	for _, s := range []string{"closed", "connect", "nothing listens", "is sshd running"} {
		if !strings.Contains(msg, s) {
			t.Errorf("message %q does not say %q", msg, s)
		}
	}
	if strings.Contains(msg, "unreachable") {
		t.Errorf("message %q calls an answering host unreachable", msg)
	}
}

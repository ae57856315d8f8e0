// Package provisiontest is the conformance suite for provision: the same
// tests run against the in-process SSH server (InProcess) and against
// OpenSSH on lab hosts (the lab builds an Env and calls RunConformance).
package provisiontest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/clusterctl/clusterctl/provision"
)

// Target is one SSH login the suite uses.
type Target struct {
	Addr         string        // host:port as dialled (for Behind: as seen from the bastion)
	User         string        // login user; its account must not be locked (OpenSSH refuses key logins then)
	IdentityFile string        // unencrypted private key file the target accepts
	HostKey      ssh.PublicKey // the key the target offers a client preferring ed25519 (give sshd an ed25519 host key)
}

// Env is what the suite runs against. Zero Targets (and a nil Cut, an empty
// Unreachable) skip the tests that need them, saying so.
//
// The targets need sh, sha256sum, GNU or busybox stat, id, ls, nproc,
// uname, sleep, base64 and an sftp-server (the sftp subsystem, and for the
// sudo users one of the usual sftp-server paths).
type Env struct {
	Root         Target // root login
	Sudo         Target // non-root user with passwordless sudo (NOPASSWD: ALL)
	SudoPass     Target // non-root user whose sudo (ALL) needs SudoPassword
	SudoPassword string
	Bastion      Target // a jump host that allows TCP forwarding
	Behind       Target // reachable only through Bastion: a direct dial must fail within 2 s
	Unreachable  string // host:port whose SYNs are dropped (not refused), for the timeout test
	// Cut drops Root's network link or connections; it is called from an
	// upload's progress callback, so it must return promptly. Heal undoes
	// it; afterwards Root must accept connections again within 10 s.
	Cut  func() error
	Heal func() error
	// TempDir is a folder on every target where the suite may write; the
	// non-root users must be able to enter it (0755 or 1777).
	TempDir string
}

// RunConformance runs the provision conformance suite against env. The
// calling test must not be parallel: the suite sets environment variables
// (the sudo password and key passphrase travel that way, as for users).
func RunConformance(t *testing.T, env Env) {
	if env.Root.Addr == "" {
		t.Fatal("provisiontest: Env.Root is required")
	}
	if env.TempDir == "" {
		t.Fatal("provisiontest: Env.TempDir is required")
	}
	s := &suite{env: env}
	s.knownHosts = filepath.Join(t.TempDir(), "known_hosts")
	var lines []string
	for _, tg := range []Target{env.Root, env.Sudo, env.SudoPass, env.Bastion, env.Behind} {
		if tg.Addr != "" {
			lines = append(lines, knownhosts.Line([]string{knownhosts.Normalize(tg.Addr)}, tg.HostKey))
		}
	}
	if err := os.WriteFile(s.knownHosts, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("HostKey/StrictRefusesUnknown", s.strictRefusesUnknown)
	t.Run("HostKey/AcceptNewRecords", s.acceptNewRecords)
	t.Run("HostKey/ChangedKeyRefused", s.changedKeyRefused)
	t.Run("Auth/BadKeyNotRetried", s.badKeyNotRetried)
	t.Run("Auth/EncryptedIdentity", s.encryptedIdentity)
	t.Run("SSHConfig", s.sshConfig)
	t.Run("Run", s.run)
	t.Run("Run/ManyChannels", s.manyChannels)
	t.Run("Files/Upload", s.upload)
	t.Run("Files/WriteReadStatRemove", s.files)
	t.Run("Files/CutMidUpload", s.cutMidUpload)
	t.Run("Bastion", s.bastion)
	t.Run("Sudo/NoPassword", s.sudoNoPassword)
	t.Run("Sudo/Password", s.sudoPassword)
	t.Run("Fanout/UnreachableTimesOut", s.unreachable)
	t.Run("Facts", s.facts)
}

type suite struct {
	env        Env
	knownHosts string // lists every target's key
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// config is the Config for a target: its key only, no agent, no
// ~/.ssh/config, the suite's known_hosts, quick keepalives.
func (s *suite) config(t *testing.T, tg Target) provision.Config {
	t.Helper()
	host, port, err := net.SplitHostPort(tg.Addr)
	if err != nil {
		t.Fatalf("target address %q: %v", tg.Addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("target address %q: %v", tg.Addr, err)
	}
	return provision.Config{
		Name:              "target-" + tg.User,
		Host:              host,
		Port:              p,
		User:              tg.User,
		IdentityFiles:     []string{tg.IdentityFile},
		NoAgent:           true,
		KnownHostsFiles:   []string{s.knownHosts},
		HostKeyPolicy:     provision.HostKeyStrict,
		ConnectTimeout:    10 * time.Second,
		KeepAliveInterval: 500 * time.Millisecond,
		KeepAliveCountMax: 4,
		SSHConfigFile:     "none",
	}
}

func (s *suite) dial(t *testing.T, cfg provision.Config) *provision.Client {
	t.Helper()
	c, err := provision.Dial(ctxFor(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// workdir makes a fresh folder under Env.TempDir through h and removes it
// when the test ends (through a new connection, in case h was cut).
func (s *suite) workdir(t *testing.T, h provision.Host, cfg provision.Config) string {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	dir := path.Join(s.env.TempDir, name+"-"+randomHex(4))
	if err := h.MkdirAll(ctxFor(t), dir, 0o755); err != nil {
		t.Fatalf("MkdirAll: %v", err)
	}
	t.Cleanup(func() {
		c, err := provision.Dial(context.Background(), cfg)
		if err != nil {
			t.Logf("cleanup of %s: %v", dir, err)
			return
		}
		defer c.Close()
		if err := c.Remove(context.Background(), dir); err != nil {
			t.Logf("cleanup of %s: %v", dir, err)
		}
	})
	return dir
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeLocal(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "payload-"+randomHex(4))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// asError returns err's *provision.Error, failing the test if there is none.
func asError(t *testing.T, err error) *provision.Error {
	t.Helper()
	var pe *provision.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *provision.Error", err, err)
	}
	return pe
}

func (s *suite) strictRefusesUnknown(t *testing.T) {
	tg := s.env.Root
	for _, setup := range []string{"empty file", "no file"} {
		t.Run(setup, func(t *testing.T) {
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if setup == "empty file" {
				os.WriteFile(kh, nil, 0o600)
			}
			cfg := s.config(t, tg)
			cfg.KnownHostsFiles = []string{kh}
			_, err := provision.Dial(ctxFor(t), cfg)
			if !errors.Is(err, provision.ErrHostKeyUnknown) {
				t.Fatalf("Dial with %s known_hosts: got %v, want ErrHostKeyUnknown", setup, err)
			}
			if provision.IsTransient(err) {
				t.Errorf("unknown host key reported as transient: %v", err)
			}
			pe := asError(t, err)
			if pe.Step != "host key" || pe.Addr != tg.Addr || pe.Attempts != 1 {
				t.Errorf("Error{Step: %q, Addr: %q, Attempts: %d}, want host key / %s / 1", pe.Step, pe.Addr, pe.Attempts, tg.Addr)
			}
			msg := err.Error()
			line := knownhosts.Line([]string{knownhosts.Normalize(tg.Addr)}, tg.HostKey)
			for _, want := range []string{ssh.FingerprintSHA256(tg.HostKey), line, kh, `host_key_policy = "accept-new"`} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			b, _ := os.ReadFile(kh)
			if len(b) != 0 {
				t.Errorf("strict policy wrote to known_hosts: %q", b)
			}
		})
	}
}

func (s *suite) acceptNewRecords(t *testing.T) {
	tg := s.env.Root
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
	cfg := s.config(t, tg)
	cfg.KnownHostsFiles = []string{kh}
	cfg.HostKeyPolicy = provision.HostKeyAcceptNew

	// Parallel first dials must record the key once, not corrupt the file.
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := provision.Dial(ctxFor(t), cfg)
			if err == nil {
				c.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("accept-new dials: %v", err)
	}
	b, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	want := knownhosts.Line([]string{knownhosts.Normalize(tg.Addr)}, tg.HostKey) + "\n"
	if string(b) != want {
		t.Fatalf("known_hosts after accept-new:\n%s\nwant exactly:\n%s", b, want)
	}
	cfg.HostKeyPolicy = provision.HostKeyStrict
	c := s.dial(t, cfg)
	if out, err := provision.Output(ctxFor(t), c, "echo recorded"); err != nil || out != "recorded\n" {
		t.Fatalf("strict dial with the recorded key: %q, %v", out, err)
	}
}

// otherKey makes a key of the same type as k, so the server's key offer
// matches the type recorded and only the key itself differs.
func otherKey(t *testing.T, k ssh.PublicKey) ssh.PublicKey {
	t.Helper()
	var priv any
	var err error
	switch k.Type() {
	case ssh.KeyAlgoRSA:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case ssh.KeyAlgoECDSA256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ssh.KeyAlgoECDSA384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ssh.KeyAlgoECDSA521:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	default:
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

func (s *suite) changedKeyRefused(t *testing.T) {
	tg := s.env.Root
	kh := filepath.Join(t.TempDir(), "known_hosts")
	content := "# recorded earlier\n" + knownhosts.Line([]string{knownhosts.Normalize(tg.Addr)}, otherKey(t, tg.HostKey)) + "\n"
	if err := os.WriteFile(kh, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []provision.HostKeyPolicy{provision.HostKeyStrict, provision.HostKeyAcceptNew} {
		cfg := s.config(t, tg)
		cfg.KnownHostsFiles = []string{kh}
		cfg.HostKeyPolicy = policy
		_, err := provision.Dial(ctxFor(t), cfg)
		if !errors.Is(err, provision.ErrHostKeyChanged) {
			t.Fatalf("policy %s: got %v, want ErrHostKeyChanged", policy, err)
		}
		if provision.IsTransient(err) {
			t.Errorf("changed key reported as transient")
		}
		if pe := asError(t, err); pe.Step != "host key" || pe.Attempts != 1 {
			t.Errorf("policy %s: step %q after %d attempts, want host key after 1", policy, pe.Step, pe.Attempts)
		}
		msg := err.Error()
		for _, want := range []string{"HOST KEY CHANGED", kh + ":2", ssh.FingerprintSHA256(tg.HostKey)} {
			if !strings.Contains(msg, want) {
				t.Errorf("policy %s: message lacks %q:\n%s", policy, want, msg)
			}
		}
		if b, _ := os.ReadFile(kh); string(b) != content {
			t.Errorf("policy %s changed known_hosts:\n%s", policy, b)
		}
	}
}

func newKeyFile(t *testing.T) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "wrong key")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_wrong")
	if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *suite) badKeyNotRetried(t *testing.T) {
	cfg := s.config(t, s.env.Root)
	cfg.IdentityFiles = []string{newKeyFile(t)}
	_, err := provision.Dial(ctxFor(t), cfg)
	if !errors.Is(err, provision.ErrAuth) {
		t.Fatalf("got %v, want ErrAuth", err)
	}
	if provision.IsTransient(err) {
		t.Errorf("auth failure reported as transient: %v", err)
	}
	pe := asError(t, err)
	if pe.Attempts != 1 || pe.Step != "auth" {
		t.Errorf("auth failure: step %q after %d attempts, want auth after 1 (no retry)", pe.Step, pe.Attempts)
	}
	if !strings.Contains(err.Error(), s.env.Root.User) {
		t.Errorf("message does not name the user: %v", err)
	}
}

func (s *suite) encryptedIdentity(t *testing.T) {
	raw, err := os.ReadFile(s.env.Root.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	pass := "pass-" + randomHex(6)
	blk, err := ssh.MarshalPrivateKeyWithPassphrase(key, "encrypted", []byte(pass))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_encrypted")
	if err := os.WriteFile(file, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	envName := "CLUSTERCTL_CONFORMANCE_PASSPHRASE"
	cfg := s.config(t, s.env.Root)
	cfg.IdentityFiles = []string{file}
	cfg.PassphraseEnv = envName

	t.Setenv(envName, "")
	_, err = provision.Dial(ctxFor(t), cfg)
	if !errors.Is(err, provision.ErrAuth) || !strings.Contains(err.Error(), envName) || !strings.Contains(err.Error(), file) {
		t.Fatalf("encrypted key without passphrase: got %v, want ErrAuth naming %s and %s", err, file, envName)
	}
	t.Setenv(envName, pass)
	c := s.dial(t, cfg)
	if out, err := provision.Output(ctxFor(t), c, "echo ok"); err != nil || out != "ok\n" {
		t.Fatalf("with passphrase: %q, %v", out, err)
	}
}

func (s *suite) sshConfig(t *testing.T) {
	host, port, _ := net.SplitHostPort(s.env.Root.Addr)
	conf := fmt.Sprintf("Host conformance-root\n  HostName %s\n  Port %s\n  User %s\n  IdentityFile %s\n",
		host, port, s.env.Root.User, s.env.Root.IdentityFile)
	if s.env.Bastion.Addr != "" {
		bh, bp, _ := net.SplitHostPort(s.env.Bastion.Addr)
		th, tp, _ := net.SplitHostPort(s.env.Behind.Addr)
		conf += fmt.Sprintf("Host conformance-bastion\n  HostName %s\n  Port %s\n  User %s\n  IdentityFile %s\n",
			bh, bp, s.env.Bastion.User, s.env.Bastion.IdentityFile)
		conf += fmt.Sprintf("Host conformance-behind\n  HostName %s\n  Port %s\n  User %s\n  IdentityFile %s\n  ProxyJump conformance-bastion\n",
			th, tp, s.env.Behind.User, s.env.Behind.IdentityFile)
	}
	file := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	aliases := []string{"conformance-root"}
	if s.env.Bastion.Addr != "" {
		aliases = append(aliases, "conformance-behind")
	}
	for _, alias := range aliases {
		cfg := provision.Config{Host: alias, SSHConfigFile: file, NoAgent: true, KnownHostsFiles: []string{s.knownHosts}, ConnectTimeout: 10 * time.Second}
		c := s.dial(t, cfg)
		out, err := provision.Output(ctxFor(t), c, "id -un")
		if err != nil {
			t.Fatalf("%s: %v", alias, err)
		}
		if alias == "conformance-root" && strings.TrimSpace(out) != s.env.Root.User {
			t.Errorf("%s: logged in as %q, want %q from ssh_config", alias, out, s.env.Root.User)
		}
	}
}

func (s *suite) run(t *testing.T) {
	ctx := ctxFor(t)
	c := s.dial(t, s.config(t, s.env.Root))

	if out, err := provision.Output(ctx, c, "id -un"); err != nil || strings.TrimSpace(out) != s.env.Root.User {
		t.Errorf("id -un: %q, %v; want %s", out, err, s.env.Root.User)
	}
	payload := randomBytes(t, 200<<10)
	res, err := c.Run(ctx, provision.Cmd{Line: "cat", Stdin: bytes.NewReader(payload)})
	if err != nil || !bytes.Equal(res.Stdout, payload) {
		t.Errorf("cat of %d bytes: got %d bytes, %v", len(payload), len(res.Stdout), err)
	}
	var out, errOut bytes.Buffer
	res, err = c.Run(ctx, provision.Cmd{Line: "echo to-out; echo oops >&2; exit 3", Stdout: &out, Stderr: &errOut})
	var xe *provision.ExitError
	if !errors.As(err, &xe) || xe.Code != 3 || res.ExitCode != 3 {
		t.Fatalf("exit 3: got %v (result code %d)", err, res.ExitCode)
	}
	if out.String() != "to-out\n" || errOut.String() != "oops\n" || !strings.Contains(err.Error(), "oops") {
		t.Errorf("streams: stdout %q stderr %q, error %v", out.String(), errOut.String(), err)
	}
	if pe := asError(t, err); !strings.HasPrefix(pe.Step, "run ") || pe.Host == "" || provision.IsTransient(err) {
		t.Errorf("exit error: %+v", pe)
	}
	// POSIX sh, whatever the login shell.
	if out, err := provision.Output(ctx, c, `x=$((2+3)); printf '%s' "$x"`); err != nil || out != "5" {
		t.Errorf("sh arithmetic: %q, %v", out, err)
	}
	// Cancelling a command ends it and leaves the connection usable.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Run(short, provision.Cmd{Line: "sleep 30"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled sleep: got %v, want context.DeadlineExceeded", err)
	}
	if out, err := provision.Output(ctx, c, "echo after"); err != nil || out != "after\n" {
		t.Errorf("after a cancelled command: %q, %v", out, err)
	}
}

func (s *suite) manyChannels(t *testing.T) {
	ctx := ctxFor(t)
	c := s.dial(t, s.config(t, s.env.Root))
	items := make([]int, 40)
	errs := provision.ForEach(ctx, items, 0, func(ctx context.Context, i int, _ int) error {
		out, err := provision.Output(ctx, c, fmt.Sprintf("sleep 0.1; echo %d", i))
		if err != nil {
			return err
		}
		if out != fmt.Sprintf("%d\n", i) {
			return fmt.Errorf("command %d printed %q", i, out)
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("40 concurrent commands on one connection: %v", err)
	}
}

// uploadChecks runs the upload contract on h in dir.
func uploadChecks(t *testing.T, h provision.Host, dir string, owner string) {
	ctx := ctxFor(t)
	data := randomBytes(t, 3<<20+123)
	local := writeLocal(t, data)
	dst := path.Join(dir, "sub", "payload.bin")

	var calls int
	var last, total int64
	monotonic := true
	progress := func(sent, tot int64) {
		calls++
		if sent < last {
			monotonic = false
		}
		last, total = sent, tot
	}
	tr, err := h.Upload(ctx, local, dst, provision.FileOptions{Mode: 0o640, Owner: owner, Progress: progress})
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if tr.Skipped || tr.Sent != int64(len(data)) || tr.Size != int64(len(data)) || tr.SHA256 != sha(data) {
		t.Errorf("first upload: %+v, want %d bytes sent", tr, len(data))
	}
	if calls == 0 || !monotonic || last != int64(len(data)) || total != int64(len(data)) {
		t.Errorf("progress: %d calls, monotonic %v, last %d/%d", calls, monotonic, last, total)
	}
	got, err := h.ReadFile(ctx, dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadFile after upload: %d bytes, %v", len(got), err)
	}
	st, err := h.Stat(ctx, dst)
	if err != nil || st.Mode.Perm() != 0o640 || st.Size != int64(len(data)) {
		t.Errorf("Stat: %+v, %v; want mode 0640", st, err)
	}
	if owner != "" {
		uid, err := provision.Output(ctx, h, "id -u "+provision.Quote(owner))
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := strconv.Atoi(strings.TrimSpace(uid)); st.UID != uint32(want) {
			t.Errorf("owner %s was not applied: uid %d, want %d", owner, st.UID, want)
		}
	}
	if out, err := provision.Output(ctx, h, "sha256sum "+provision.Quote(dst)); err != nil || !strings.HasPrefix(out, sha(data)) {
		t.Errorf("remote sha256sum: %q, %v", out, err)
	}

	calls = 0
	tr, err = h.Upload(ctx, local, dst, provision.FileOptions{Mode: 0o640, Owner: owner, Progress: progress})
	if err != nil || !tr.Skipped || tr.Sent != 0 || calls != 0 {
		t.Errorf("identical upload: %+v, %v, %d progress calls; want skipped, 0 bytes", tr, err, calls)
	}
	tr, err = h.Upload(ctx, local, dst, provision.FileOptions{Mode: 0o600, Owner: owner, SHA256: sha(data)})
	if err != nil || !tr.Skipped || tr.Sent != 0 {
		t.Errorf("identical upload with new mode: %+v, %v", tr, err)
	}
	if st, err := h.Stat(ctx, dst); err != nil || st.Mode.Perm() != 0o600 {
		t.Errorf("mode not corrected on a skipped upload: %v, %v", st.Mode, err)
	}

	data2 := append(randomBytes(t, 1000), data[1000:]...)
	local2 := writeLocal(t, data2)
	tr, err = h.Upload(ctx, local2, dst, provision.FileOptions{Mode: 0o755})
	if err != nil || tr.Skipped || tr.Sent != int64(len(data2)) {
		t.Fatalf("changed upload: %+v, %v", tr, err)
	}
	if got, err := h.ReadFile(ctx, dst); err != nil || !bytes.Equal(got, data2) {
		t.Errorf("content after changed upload differs (%v)", err)
	}
	if out, err := provision.Output(ctx, h, "ls -A "+provision.Quote(path.Dir(dst))); err != nil || out != "payload.bin\n" {
		t.Errorf("folder holds %q (%v), want only payload.bin", out, err)
	}

	if _, err := h.Upload(ctx, local, "relative/path", provision.FileOptions{}); err == nil {
		t.Errorf("upload to a relative path succeeded")
	}
}

func (s *suite) upload(t *testing.T) {
	cfg := s.config(t, s.env.Root)
	c := s.dial(t, cfg)
	uploadChecks(t, c, s.workdir(t, c, cfg), "")
}

func (s *suite) files(t *testing.T) {
	ctx := ctxFor(t)
	cfg := s.config(t, s.env.Root)
	c := s.dial(t, cfg)
	dir := s.workdir(t, c, cfg)

	secret := path.Join(dir, "secret.key")
	tr, err := c.WriteFile(ctx, secret, []byte("top secret\n"), provision.FileOptions{Mode: 0o600})
	if err != nil || tr.Skipped || tr.Sent != 11 {
		t.Fatalf("WriteFile: %+v, %v", tr, err)
	}
	if st, err := c.Stat(ctx, secret); err != nil || st.Mode.Perm() != 0o600 || st.IsDir() {
		t.Errorf("secret: %+v, %v; want 0600 file", st, err)
	}
	if tr, err := c.WriteFile(ctx, secret, []byte("top secret\n"), provision.FileOptions{Mode: 0o600}); err != nil || !tr.Skipped {
		t.Errorf("same WriteFile again: %+v, %v; want skipped", tr, err)
	}
	if b, err := c.ReadFile(ctx, secret); err != nil || string(b) != "top secret\n" {
		t.Errorf("ReadFile: %q, %v", b, err)
	}
	if tr, err := c.WriteFile(ctx, secret, nil, provision.FileOptions{Mode: 0o600}); err != nil || tr.Skipped {
		t.Errorf("empty WriteFile: %+v, %v", tr, err)
	} else if b, err := c.ReadFile(ctx, secret); err != nil || len(b) != 0 {
		t.Errorf("empty file reads %q, %v", b, err)
	}

	nested := path.Join(dir, "a", "b", "c")
	if err := c.MkdirAll(ctx, nested, 0o750); err != nil {
		t.Fatalf("MkdirAll: %v", err)
	}
	if st, err := c.Stat(ctx, nested); err != nil || !st.IsDir() || st.Mode.Perm() != 0o750 {
		t.Errorf("Stat of new folder: %+v, %v", st, err)
	}
	if err := c.MkdirAll(ctx, nested, 0o750); err != nil {
		t.Errorf("MkdirAll of an existing folder: %v", err)
	}
	if err := c.Remove(ctx, path.Join(dir, "a")); err != nil {
		t.Fatalf("Remove tree: %v", err)
	}
	_, err = c.Stat(ctx, nested)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Remove: %v, want fs.ErrNotExist", err)
	}
	if pe := asError(t, err); !strings.Contains(pe.Step, nested) {
		t.Errorf("Stat error step %q does not name the path", pe.Step)
	}
	if err := c.Remove(ctx, path.Join(dir, "a")); err != nil {
		t.Errorf("Remove of a missing path: %v", err)
	}
	if _, err := c.ReadFile(ctx, path.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) || provision.IsTransient(err) {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
	if _, err := c.WriteFile(ctx, dir, []byte("x"), provision.FileOptions{}); err == nil {
		t.Errorf("WriteFile over a folder succeeded")
	}
}

func (s *suite) cutMidUpload(t *testing.T) {
	if s.env.Cut == nil || s.env.Heal == nil {
		t.Skip("Env has no Cut/Heal")
	}
	ctx := ctxFor(t)
	cfg := s.config(t, s.env.Root)
	setup := s.dial(t, cfg)
	dir := s.workdir(t, setup, cfg)
	dst := path.Join(dir, "big.bin")
	data := randomBytes(t, 48<<20)
	local := writeLocal(t, data)

	c, err := provision.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var cut atomic.Bool
	var cutErr error
	healed := false
	heal := func() {
		if !healed {
			healed = true
			if err := s.env.Heal(); err != nil {
				t.Errorf("Heal: %v", err)
			}
		}
	}
	t.Cleanup(heal)
	_, err = c.Upload(ctx, local, dst, provision.FileOptions{Progress: func(sent, total int64) {
		if sent > total/4 && cut.CompareAndSwap(false, true) {
			cutErr = s.env.Cut()
		}
	}})
	if cutErr != nil {
		t.Fatalf("Cut: %v", cutErr)
	}
	if !cut.Load() {
		t.Fatal("upload never reached a quarter")
	}
	heal()
	if err == nil {
		t.Fatal("upload succeeded although the connection was cut")
	}
	if !errors.Is(err, provision.ErrConnectionLost) || !provision.IsTransient(err) {
		t.Errorf("cut upload: got %v, want a transient ErrConnectionLost", err)
	}
	if !strings.Contains(err.Error(), dst) {
		t.Errorf("error does not name %s: %v", dst, err)
	}

	c2 := s.dial(t, cfg) // Dial retries while the link comes back
	if _, err := c2.Stat(ctx, dst); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after a cut upload, Stat(%s) = %v; want fs.ErrNotExist (nothing at the final path)", dst, err)
	}
	tr, err := c2.Upload(ctx, local, dst, provision.FileOptions{SHA256: sha(data)})
	if err != nil || tr.Skipped {
		t.Fatalf("upload after heal: %+v, %v", tr, err)
	}
	if out, err := provision.Output(ctx, c2, "ls -A "+provision.Quote(dir)); err != nil || out != "big.bin\n" {
		t.Errorf("after a complete upload the folder holds %q (%v); want only big.bin, the cut temp file removed", out, err)
	}
}

func (s *suite) bastion(t *testing.T) {
	if s.env.Bastion.Addr == "" || s.env.Behind.Addr == "" {
		t.Skip("Env has no Bastion/Behind")
	}
	ctx := ctxFor(t)
	direct := s.config(t, s.env.Behind)
	direct.ConnectTimeout = 2 * time.Second
	if c, err := provision.Dial(ctx, direct); err == nil {
		c.Close()
		t.Fatalf("Behind (%s) answered a direct dial; it must be reachable only through the bastion", s.env.Behind.Addr)
	}

	cfg := s.config(t, s.env.Behind)
	cfg.ProxyJump = []provision.Config{s.config(t, s.env.Bastion)}
	c := s.dial(t, cfg)
	if out, err := provision.Output(ctx, c, "echo behind"); err != nil || out != "behind\n" {
		t.Fatalf("Run through the bastion: %q, %v", out, err)
	}
	dir := s.workdir(t, c, cfg)
	data := randomBytes(t, 1<<20)
	dst := path.Join(dir, "through-bastion")
	if _, err := c.WriteFile(ctx, dst, data, provision.FileOptions{}); err != nil {
		t.Fatalf("WriteFile through the bastion: %v", err)
	}
	if got, err := c.ReadFile(ctx, dst); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadFile through the bastion: %d bytes, %v", len(got), err)
	}

	// A jump host with an unknown key is refused like any host, and the
	// error says it was the jump.
	bad := cfg
	bad.ProxyJump = []provision.Config{s.config(t, s.env.Bastion)}
	bad.ProxyJump[0].KnownHostsFiles = []string{filepath.Join(t.TempDir(), "empty")}
	_, err := provision.Dial(ctx, bad)
	if !errors.Is(err, provision.ErrHostKeyUnknown) || !strings.HasPrefix(asError(t, err).Step, "jump host ") {
		t.Errorf("unknown bastion key: got %v, want ErrHostKeyUnknown at step \"jump host ...\"", err)
	}
}

// rootOnlyDir makes a 0700 root-owned folder through a sudo client.
func rootOnlyDir(t *testing.T, c provision.Host, dir string) string {
	t.Helper()
	p := path.Join(dir, "root-only")
	if err := c.MkdirAll(ctxFor(t), p, 0o700); err != nil {
		t.Fatalf("MkdirAll as root through sudo: %v", err)
	}
	st, err := c.Stat(ctxFor(t), p)
	if err != nil || st.UID != 0 || st.Mode.Perm() != 0o700 {
		t.Fatalf("root-only folder: %+v, %v", st, err)
	}
	return p
}

// sudoChecks proves commands and files go through sudo, and that without
// sudo the same user is refused.
func (s *suite) sudoChecks(t *testing.T, tg Target, cfg provision.Config) {
	ctx := ctxFor(t)
	c := s.dial(t, cfg)
	if out, err := provision.Output(ctx, c, "id -u"); err != nil || out != "0\n" {
		t.Fatalf("id -u through sudo: %q, %v", out, err)
	}
	res, err := c.Run(ctx, provision.Cmd{Line: "id -un", AsLoginUser: true})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != tg.User {
		t.Errorf("AsLoginUser: %q, %v", res.Stdout, err)
	}
	payload := randomBytes(t, 64<<10)
	res, err = c.Run(ctx, provision.Cmd{Line: "cat", Stdin: bytes.NewReader(payload)})
	if err != nil || !bytes.Equal(res.Stdout, payload) {
		t.Errorf("stdin through sudo: %d bytes back (want %d), %v", len(res.Stdout), len(payload), err)
	}

	dir := s.workdir(t, c, cfg)
	secret := rootOnlyDir(t, c, dir)
	uploadChecks(t, c, secret, tg.User)
	f, err := c.Facts(ctx)
	if err != nil || !f.HasCap(provision.CapSysAdmin) {
		t.Errorf("Facts through sudo: CapEff %x, %v; want root's capabilities", f.CapEff, err)
	}

	plain := cfg
	plain.Sudo = false
	p := s.dial(t, plain)
	if out, err := provision.Output(ctx, p, "id -u"); err != nil || out == "0\n" {
		t.Fatalf("without sudo: id -u = %q, %v; want non-root", out, err)
	}
	_, err = p.WriteFile(ctx, path.Join(secret, "denied"), []byte("x"), provision.FileOptions{})
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("write into a root-only folder without sudo: %v, want fs.ErrPermission", err)
	}
}

func (s *suite) sudoNoPassword(t *testing.T) {
	if s.env.Sudo.Addr == "" {
		t.Skip("Env has no passwordless sudo user")
	}
	cfg := s.config(t, s.env.Sudo)
	cfg.Sudo = true
	s.sudoChecks(t, s.env.Sudo, cfg)
}

func (s *suite) sudoPassword(t *testing.T) {
	if s.env.SudoPass.Addr == "" {
		t.Skip("Env has no sudo-with-password user")
	}
	ctx := ctxFor(t)
	const envName = "CLUSTERCTL_CONFORMANCE_SUDO_PASSWORD"
	cfg := s.config(t, s.env.SudoPass)
	cfg.Sudo = true

	_, err := provision.Dial(ctx, cfg)
	if !errors.Is(err, provision.ErrSudo) || !strings.Contains(err.Error(), "sudo_password_env") {
		t.Errorf("sudo needing a password, none configured: %v; want ErrSudo naming sudo_password_env", err)
	}

	wrong := "wrong-" + randomHex(8)
	t.Setenv(envName, wrong)
	cfg.SudoPasswordEnv = envName
	_, err = provision.Dial(ctx, cfg)
	if !errors.Is(err, provision.ErrSudo) || provision.IsTransient(err) {
		t.Errorf("wrong sudo password: %v; want ErrSudo", err)
	}
	if err != nil && strings.Contains(err.Error(), wrong) {
		t.Errorf("error shows the password: %v", err)
	}

	t.Setenv(envName, s.env.SudoPassword)
	s.sudoChecks(t, s.env.SudoPass, cfg)
}

func (s *suite) unreachable(t *testing.T) {
	if s.env.Unreachable == "" {
		t.Skip("Env has no unreachable address")
	}
	ctx := ctxFor(t)
	dead := s.config(t, s.env.Root)
	dead.Name = "dead"
	host, port, _ := net.SplitHostPort(s.env.Unreachable)
	dead.Host = host
	dead.Port, _ = strconv.Atoi(port)
	dead.ConnectTimeout = 2 * time.Second
	live := s.config(t, s.env.Root)
	live.ConnectTimeout = 2 * time.Second

	clients, err := provision.DialAll(ctx, []provision.Config{live, dead, live}, 2)
	for _, c := range clients {
		if c != nil {
			defer c.Close()
		}
	}
	if !errors.Is(err, provision.ErrTimeout) || !provision.IsTransient(err) {
		t.Fatalf("DialAll: %v; want ErrTimeout for the dead host", err)
	}
	pe := asError(t, err)
	if pe.Host != "dead" || pe.Addr != s.env.Unreachable || pe.Step != "connect" {
		t.Errorf("error names %q %q %q; want dead / %s / connect", pe.Host, pe.Addr, pe.Step, s.env.Unreachable)
	}
	if clients[1] != nil {
		t.Errorf("client for the dead host")
	}
	for _, i := range []int{0, 2} {
		if clients[i] == nil {
			t.Fatalf("host %d was not connected", i)
		}
		if out, err := provision.Output(ctx, clients[i], "echo alive"); err != nil || out != "alive\n" {
			t.Errorf("host %d: %q, %v", i, out, err)
		}
	}
}

func (s *suite) facts(t *testing.T) {
	ctx := ctxFor(t)
	c := s.dial(t, s.config(t, s.env.Root))
	f, err := c.Facts(ctx)
	if err != nil {
		t.Fatalf("Facts: %v", err)
	}
	check := func(what, got, cmd string) {
		want, err := provision.Output(ctx, c, cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if got != strings.TrimSpace(want) {
			t.Errorf("Facts.%s = %q, `%s` says %q", what, got, cmd, strings.TrimSpace(want))
		}
	}
	check("Kernel", f.Kernel, "uname -r")
	check("Machine", f.Machine, "uname -m")
	check("CPUs", strconv.Itoa(f.CPUs), "nproc")
	check("sha256sum", f.Tools["sha256sum"], "command -v sha256sum")
	check("Hostname", f.Hostname, "cat /proc/sys/kernel/hostname")
	if f.Arch == "" || f.MemoryBytes < 64<<20 || (f.CgroupVersion != 1 && f.CgroupVersion != 2) {
		t.Errorf("Facts: arch %q, memory %d, cgroup v%d", f.Arch, f.MemoryBytes, f.CgroupVersion)
	}
	if out, _ := provision.Output(ctx, c, "id -u"); out == "0\n" && !f.HasCap(provision.CapSysAdmin) {
		t.Errorf("root without CAP_SYS_ADMIN: CapEff %x", f.CapEff)
	}
	for _, file := range []struct {
		path string
		got  []byte
	}{{"/etc/clusterctl/installed.json", f.Installed}, {"/etc/clusterctl/lab-host.json", f.LabHost}} {
		want, err := c.ReadFile(ctx, file.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if file.got != nil {
				t.Errorf("Facts has %s, but the host has none", file.path)
			}
		case err != nil:
			t.Errorf("ReadFile %s: %v", file.path, err)
		case !bytes.Equal(file.got, want):
			t.Errorf("Facts' %s differs from the file", file.path)
		}
	}
}

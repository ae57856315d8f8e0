package provision

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newHostKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A @cert-authority line vouches for host certificates, never for a plain
// host key that happens to be the CA's: OpenSSH refuses such a host, and
// so must we.
func TestCertAuthorityLineIsNotAPlainHostKey(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	ca, plain := newHostKey(t), newHostKey(t)
	content := "@cert-authority 10.0.0.7 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca))) + "\n" +
		knownhosts.Line([]string{"10.0.0.8"}, plain) + "\n"
	if err := os.WriteFile(kh, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	remote := &net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 22}

	h := &hostKeys{files: []string{kh}, policy: HostKeyStrict, name: "cp-1"}
	err := h.check("10.0.0.7:22", remote, ca)
	if !errors.Is(err, ErrHostKeyUnknown) {
		t.Fatalf("the CA's key offered as a host key: want ErrHostKeyUnknown, got %v", err)
	}
	if !strings.Contains(err.Error(), kh+":1 is a @cert-authority line") {
		t.Errorf("message does not point at the CA line: %v", err)
	}
	if err := (&hostKeys{files: []string{kh}, policy: HostKeyStrict, name: "w-1"}).check("10.0.0.8:22", remote, plain); err != nil {
		t.Errorf("a plain recorded key was refused: %v", err)
	}

	// accept-new does not take the CA line as the host's key either: it
	// records the offered one as a new plain line.
	h.policy = HostKeyAcceptNew
	if err := h.check("10.0.0.7:22", remote, ca); err != nil {
		t.Fatalf("accept-new: %v", err)
	}
	b, _ := os.ReadFile(kh)
	if got := strings.Count(string(b), "\n"); got != 3 {
		t.Errorf("known_hosts has %d lines after accept-new, want 3:\n%s", got, b)
	}
}

func TestKnownHostsThatIsNotAFileIsRefused(t *testing.T) {
	h := &hostKeys{files: []string{"/dev/zero"}, policy: HostKeyStrict, name: "cp-1"}
	err := h.check("10.0.0.7:22", &net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 22}, newHostKey(t))
	if err == nil || !strings.Contains(err.Error(), "/dev/zero") || !strings.Contains(err.Error(), "character device") {
		t.Fatalf("want an error naming /dev/zero as a character device, got %v", err)
	}
}

func TestReadLocalFileLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readLocalFile(big, 1024); err == nil || !strings.Contains(err.Error(), "larger than 1024 bytes") {
		t.Errorf("a file over the limit: %v", err)
	}
	if b, err := readLocalFile(big, 4096); err != nil || len(b) != 2048 {
		t.Errorf("a file under the limit: %d bytes, %v", len(b), err)
	}
	if _, err := readLocalFile(dir, 1024); !errors.Is(err, errNotRegular) || !strings.Contains(err.Error(), "a folder") {
		t.Errorf("a folder: %v", err)
	}
	if _, err := readLocalFile(filepath.Join(dir, "missing"), 1024); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
}

func TestEncryptedKeyPassphraseMessages(t *testing.T) {
	const env = "CLUSTERCTL_TEST_KEY_PASS"
	c := Config{PassphraseEnv: env}

	os.Unsetenv(env)
	_, _, err := passphrase("/k", c, false)
	if err == nil || !strings.Contains(err.Error(), env+" (named by identity_passphrase_env) is not set") {
		t.Errorf("unset variable: %v", err)
	}
	t.Setenv(env, "")
	_, _, err = passphrase("/k", c, false)
	if err == nil || !strings.Contains(err.Error(), "is empty") || !strings.Contains(err.Error(), "ssh-add /k") {
		t.Errorf("empty variable: %v", err)
	}
	if _, skip, err := passphrase("/k", c, true); !skip || err != nil {
		t.Errorf("empty variable with an agent: skip=%v err=%v, want the file left to the agent", skip, err)
	}
	t.Setenv(env, "s3cret")
	if pass, skip, err := passphrase("/k", c, false); string(pass) != "s3cret" || skip || err != nil {
		t.Errorf("set variable: %q %v %v", pass, skip, err)
	}
}

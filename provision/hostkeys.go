package provision

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sys/unix"
)

// hostKeys checks host keys against known_hosts files under a policy. It
// never accepts a key that differs from a recorded one.
type hostKeys struct {
	files  []string // accept-new appends to files[0]
	policy HostKeyPolicy
	name   string // host name for messages
}

// db loads the known_hosts files that exist; missing ones count as empty.
func (h *hostKeys) db() (ssh.HostKeyCallback, error) {
	var existing []string
	for _, f := range h.files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		} else if !os.IsNotExist(err) {
			return nil, err
		}
	}
	return knownhosts.New(existing...)
}

// known returns the keys recorded for addr.
func (h *hostKeys) known(addr string) ([]knownhosts.KnownKey, error) {
	cb, err := h.db()
	if err != nil {
		return nil, err
	}
	// A key that cannot match makes knownhosts list every recorded key.
	err = cb(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey{})
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		return ke.Want, nil
	}
	return nil, err
}

// probeKey is a public key no host has.
type probeKey struct{}

func (probeKey) Type() string                        { return "clusterctl-probe" }
func (probeKey) Marshal() []byte                     { return []byte("\x00\x00\x00\x10clusterctl-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// algorithms returns the host key algorithms to offer for addr: those of the
// recorded keys, so a host with several keys presents the one we know;
// OpenSSH's preference order when none is recorded.
func (h *hostKeys) algorithms(addr string) ([]string, error) {
	keys, err := h.known(addr)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return []string{
			ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
			ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
		}, nil
	}
	var out []string
	add := func(a ...string) {
		for _, x := range a {
			if !contains(out, x) {
				out = append(out, x)
			}
		}
	}
	for _, k := range keys {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
		default:
			add(t)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// check is the ssh.HostKeyCallback.
func (h *hostKeys) check(addr string, remote net.Addr, key ssh.PublicKey) error {
	cb, err := h.db()
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	err = cb(addr, remote, key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return fmt.Errorf("%w: %s offers %s key %s, which %s:%d marks @revoked; refusing to connect",
			ErrHostKeyChanged, h.name, key.Type(), ssh.FingerprintSHA256(key), re.Revoked.Filename, re.Revoked.Line)
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return h.changed(addr, key, ke.Want)
	case errors.As(err, &ke):
		if h.policy == HostKeyAcceptNew {
			return h.record(addr, remote, key)
		}
		return h.unknown(addr, key)
	default:
		return fmt.Errorf("known_hosts: %w", err)
	}
}

func (h *hostKeys) unknown(addr string, key ssh.PublicKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
	return fmt.Errorf(`%w: %s offers %s key %s, which is not in %s.
Check that fingerprint on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then either
  add this line to %s:
    %s
  or connect once with host_key_policy = "accept-new" in the cluster spec's ssh block`,
		ErrHostKeyUnknown, h.name, key.Type(), ssh.FingerprintSHA256(key), strings.Join(h.files, ", "),
		keyFileKind(key), h.files[0], line)
}

func keyFileKind(key ssh.PublicKey) string {
	switch t := key.Type(); {
	case t == ssh.KeyAlgoED25519:
		return "ed25519"
	case strings.HasPrefix(t, "ecdsa-"):
		return "ecdsa"
	case t == ssh.KeyAlgoRSA:
		return "rsa"
	default:
		return "*"
	}
}

func (h *hostKeys) changed(addr string, key ssh.PublicKey, want []knownhosts.KnownKey) error {
	var recorded []string
	for _, w := range want {
		recorded = append(recorded, fmt.Sprintf("%s:%d (%s %s)", w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key)))
	}
	norm := knownhosts.Normalize(addr)
	return fmt.Errorf(`%w: %s now offers %s key %s, but known_hosts records another key for %s at %s.
Someone may be intercepting the connection (man-in-the-middle), or the host was reinstalled.
If you know the change is expected, delete that line (ssh-keygen -R '%s' -f %s) and connect again;
clusterctl never replaces a recorded host key by itself`,
		ErrHostKeyChanged, h.name, key.Type(), ssh.FingerprintSHA256(key), norm, strings.Join(recorded, ", "),
		norm, want[0].Filename)
}

// record appends key for addr to the first known_hosts file. The file is
// locked while it is re-read and appended, so parallel dials neither
// corrupt it nor add a line twice.
func (h *hostKeys) record(addr string, remote net.Addr, key ssh.PublicKey) error {
	file := h.files[0]
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("known_hosts: lock %s: %w", file, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)

	// Another dial may have recorded this host while we waited for the lock.
	cb, err := h.db()
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	var ke *knownhosts.KeyError
	switch err := cb(addr, remote, key); {
	case err == nil:
		return nil
	case errors.As(err, &ke) && len(ke.Want) > 0:
		return h.changed(addr, key, ke.Want)
	}

	content, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if len(content) > 0 && content[len(content)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("known_hosts: append to %s: %w", file, err)
	}
	return f.Sync()
}

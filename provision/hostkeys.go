package provision

import (
	"errors"
	"fmt"
	"io/fs"
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

// knownHostsDB is the known_hosts files as loaded: x/crypto's matcher, and
// where the @cert-authority lines are. The matcher takes a CA line for a
// host key of every host it names; OpenSSH does not, and neither do we:
// CA lines are left out of plain-key matching (host certificates are not
// offered, so a CA vouches for nothing here). @revoked lines are honoured:
// a revoked key is refused even when another line lists it.
type knownHostsDB struct {
	match ssh.HostKeyCallback
	ca    map[lineRef]bool
}

type lineRef struct {
	file string
	line int
}

// hostKeyVerdict is what known_hosts says about one key of one host.
type hostKeyVerdict struct {
	revoked *knownhosts.KnownKey // the @revoked line that names the key
	ok      bool                 // a plain line for the host lists the key
	want    []knownhosts.KnownKey
	ca      []knownhosts.KnownKey // @cert-authority lines naming the host
}

// db loads the known_hosts files that exist; missing ones count as empty.
// Each must be a regular file of at most maxKnownHostsSize.
func (h *hostKeys) db() (*knownHostsDB, error) {
	d := &knownHostsDB{ca: map[lineRef]bool{}}
	var existing []string
	for _, f := range h.files {
		b, err := readLocalFile(f, maxKnownHostsSize)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := d.scan(f, b); err != nil {
			return nil, err
		}
		existing = append(existing, f)
	}
	match, err := knownhosts.New(existing...)
	if err != nil {
		return nil, err
	}
	d.match = match
	return d, nil
}

// maxKnownHostsLine is the longest line x/crypto's reader accepts.
const maxKnownHostsLine = 64 << 10

// scan notes the @cert-authority lines of one file and refuses lines too
// long to be read.
func (d *knownHostsDB) scan(file string, b []byte) error {
	for i, line := range strings.Split(string(b), "\n") {
		if len(line) >= maxKnownHostsLine {
			return fmt.Errorf("%s:%d: line longer than %d bytes; that is not a known_hosts file", file, i+1, maxKnownHostsLine)
		}
		word, _, _ := strings.Cut(strings.TrimLeft(line, " \t"), " ")
		word, _, _ = strings.Cut(word, "\t")
		if word == "@cert-authority" {
			d.ca[lineRef{file, i + 1}] = true
		}
	}
	return nil
}

// recorded returns the lines that match addr, host keys and CA lines apart.
func (d *knownHostsDB) recorded(addr string) (keys, ca []knownhosts.KnownKey, err error) {
	// A key that cannot match makes knownhosts list every matching line.
	err = d.match(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil, nil, err
	}
	for _, k := range ke.Want {
		if d.ca[lineRef{k.Filename, k.Line}] {
			ca = append(ca, k)
		} else {
			keys = append(keys, k)
		}
	}
	return keys, ca, nil
}

// verdict checks key for addr.
func (d *knownHostsDB) verdict(addr string, remote net.Addr, key ssh.PublicKey) (hostKeyVerdict, error) {
	var v hostKeyVerdict
	var re *knownhosts.RevokedError
	if err := d.match(addr, remote, key); errors.As(err, &re) {
		v.revoked = &re.Revoked
		return v, nil
	}
	var err error
	if v.want, v.ca, err = d.recorded(addr); err != nil {
		return v, err
	}
	for _, w := range v.want {
		if string(w.Key.Marshal()) == string(key.Marshal()) {
			v.ok = true
		}
	}
	return v, nil
}

// known returns the host keys recorded for addr (CA lines left out).
func (h *hostKeys) known(addr string) ([]knownhosts.KnownKey, error) {
	d, err := h.db()
	if err != nil {
		return nil, err
	}
	keys, _, err := d.recorded(addr)
	return keys, err
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
	if _, ok := key.(*ssh.Certificate); ok {
		return fmt.Errorf("%w: %s offers a host certificate; clusterctl checks plain host keys only", ErrHostKeyUnknown, h.name)
	}
	d, err := h.db()
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	v, err := d.verdict(addr, remote, key)
	switch {
	case err != nil:
		return fmt.Errorf("known_hosts: %w", err)
	case v.revoked != nil:
		return h.revoked(key, *v.revoked)
	case v.ok:
		return nil
	case len(v.want) > 0:
		return h.changed(addr, key, v.want)
	case h.policy == HostKeyAcceptNew:
		return h.record(addr, remote, key)
	}
	return h.unknown(addr, key, v.ca)
}

func (h *hostKeys) revoked(key ssh.PublicKey, line knownhosts.KnownKey) error {
	return fmt.Errorf("%w: %s offers %s key %s, which %s:%d marks @revoked; refusing to connect",
		ErrHostKeyChanged, h.name, key.Type(), ssh.FingerprintSHA256(key), line.Filename, line.Line)
}

func (h *hostKeys) unknown(addr string, key ssh.PublicKey, ca []knownhosts.KnownKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
	note := ""
	if len(ca) > 0 {
		note = fmt.Sprintf("\n(%s:%d is a @cert-authority line for it, but clusterctl checks plain host keys only, as OpenSSH does for a host that offers no certificate)",
			ca[0].Filename, ca[0].Line)
	}
	return fmt.Errorf(`%w: %s offers %s key %s, which is not in %s.%s
Check that fingerprint on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub), then either
  add this line to %s:
    %s
  or connect once with host_key_policy = "accept-new" in the cluster spec's ssh block`,
		ErrHostKeyUnknown, h.name, key.Type(), ssh.FingerprintSHA256(key), strings.Join(h.files, ", "), note,
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
	d, err := h.db()
	if err != nil {
		return fmt.Errorf("known_hosts: %w", err)
	}
	v, err := d.verdict(addr, remote, key)
	switch {
	case err != nil:
		return fmt.Errorf("known_hosts: %w", err)
	case v.revoked != nil:
		return h.revoked(key, *v.revoked)
	case v.ok:
		return nil
	case len(v.want) > 0:
		return h.changed(addr, key, v.want)
	}

	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	complete, err := endsInNewline(f)
	if err != nil {
		return fmt.Errorf("known_hosts: %s: %w", file, err)
	}
	if !complete {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("known_hosts: append to %s: %w", file, err)
	}
	return f.Sync()
}

// endsInNewline reports whether f is empty or ends with a newline.
func endsInNewline(f *os.File) (bool, error) {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return true, err
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, st.Size()-1); err != nil {
		return false, err
	}
	return last[0] == '\n', nil
}

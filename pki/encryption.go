package pki

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Encryption at rest: kube-apiserver encrypts Secrets with keys from a
// keyring kept in the PKI store next to the CA keys (and, like them, copied
// to every control plane so a lost local state can be restored). The
// keyring is the source of truth; each API server's EncryptionConfiguration
// is rendered from it (RenderEncryptionConfig).
//
// A key moves through states, one apply at a time, so that no API server
// ever meets data it cannot read:
//
//	staged   every API server can read with it; writes still use the
//	         previous write key (or plaintext). Only with several control
//	         planes: one API server must not write with a key another does
//	         not know yet.
//	write    new writes use it.
//	retired  a previous write key, kept for reading until every Secret was
//	         rewritten with the write key; then it is removed.
//
// The identity provider stays last in every configuration: Secrets written
// before encryption was turned on (or restored from an old snapshot) stay
// readable, and are encrypted the next time they are written.

// KeyringFile is the keyring's path in the PKI store and, under HostPKIDir,
// on the control planes.
const KeyringFile = "encryption/keyring.json"

// Encryption providers clusterctl offers for local keys.
const (
	// ProviderSecretbox is XSalsa20-Poly1305: authenticated, fast, no nonce
	// bookkeeping. The default.
	ProviderSecretbox = "secretbox"
	// ProviderAESCBC is AES-256-CBC with PKCS#7 padding, for sites whose
	// rules ask for AES; Kubernetes rates it weaker than secretbox.
	ProviderAESCBC = "aescbc"
)

// EncryptionProviders lists the providers the spec may ask for.
func EncryptionProviders() []string { return []string{ProviderSecretbox, ProviderAESCBC} }

// KeyState is where a key is in its life.
type KeyState string

// Key states (see above).
const (
	KeyStaged  KeyState = "staged"
	KeyWrite   KeyState = "write"
	KeyRetired KeyState = "retired"
)

// KeyringFormat is the version of the keyring file.
const KeyringFormat = 1

// EncryptionKey is one key of the keyring.
type EncryptionKey struct {
	Name     string    `json:"name"`     // "key<serial>", the name in the EncryptionConfiguration and in etcd's value prefix
	Serial   int       `json:"serial"`   // security.encryption_key_serial it was made for
	Provider string    `json:"provider"` // ProviderSecretbox or ProviderAESCBC
	Secret   []byte    `json:"secret"`   // 32 random bytes (base64 in JSON)
	State    KeyState  `json:"state"`
	Created  time.Time `json:"created"`
}

// Keyring is every key the API servers know, in no particular order (the
// order of the configuration follows from the states).
type Keyring struct {
	FormatVersion int             `json:"format_version"`
	Keys          []EncryptionKey `json:"keys"`
}

// KeyName is the name of the key made for a serial.
func KeyName(serial int) string { return "key" + strconv.Itoa(serial) }

// ParseKeyring reads and checks a keyring file.
func ParseKeyring(b []byte) (Keyring, error) {
	var r Keyring
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Keyring{}, fmt.Errorf("%s: %w", KeyringFile, err)
	}
	if r.FormatVersion != KeyringFormat {
		return Keyring{}, fmt.Errorf("%s: format version %d, this clusterctl reads %d", KeyringFile, r.FormatVersion, KeyringFormat)
	}
	if err := r.validate(); err != nil {
		return Keyring{}, fmt.Errorf("%s: %w", KeyringFile, err)
	}
	return r, nil
}

// Marshal renders the keyring file.
func (r Keyring) Marshal() ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	r.FormatVersion = KeyringFormat
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (r Keyring) validate() error {
	if len(r.Keys) == 0 {
		return errors.New("no keys")
	}
	names := map[string]bool{}
	count := map[KeyState]int{}
	for _, k := range r.Keys {
		if k.Serial < 1 || k.Name != KeyName(k.Serial) {
			return fmt.Errorf("key %q: name must be key<serial> with serial %d ≥ 1", k.Name, k.Serial)
		}
		if names[k.Name] {
			return fmt.Errorf("key %s listed twice", k.Name)
		}
		names[k.Name] = true
		if !slices.Contains(EncryptionProviders(), k.Provider) {
			return fmt.Errorf("key %s: unknown provider %q", k.Name, k.Provider)
		}
		if len(k.Secret) != 32 {
			return fmt.Errorf("key %s: the secret has %d bytes, want 32", k.Name, len(k.Secret))
		}
		switch k.State {
		case KeyStaged, KeyWrite, KeyRetired:
			count[k.State]++
		default:
			return fmt.Errorf("key %s: unknown state %q", k.Name, k.State)
		}
	}
	if count[KeyWrite] > 1 || count[KeyStaged] > 1 {
		return fmt.Errorf("%d write keys and %d staged keys; at most one of each", count[KeyWrite], count[KeyStaged])
	}
	if count[KeyWrite] == 0 && count[KeyStaged] == 0 {
		return errors.New("neither a write key nor a staged key")
	}
	return nil
}

func (r Keyring) first(s KeyState) *EncryptionKey {
	for i := range r.Keys {
		if r.Keys[i].State == s {
			return &r.Keys[i]
		}
	}
	return nil
}

// WriteKey is the key new writes use; nil while Secrets are still written
// unencrypted (a key is staged on a cluster that had no encryption).
func (r Keyring) WriteKey() *EncryptionKey { return r.first(KeyWrite) }

// Staged is the staged key, if any.
func (r Keyring) Staged() *EncryptionKey { return r.first(KeyStaged) }

// Retired lists the retired keys, newest first.
func (r Keyring) Retired() []EncryptionKey {
	var out []EncryptionKey
	for _, k := range r.Keys {
		if k.State == KeyRetired {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b EncryptionKey) int { return b.Serial - a.Serial })
	return out
}

func (r Keyring) newest() int {
	n := 0
	for _, k := range r.Keys {
		n = max(n, k.Serial)
	}
	return n
}

// Identity is the name the unencrypted provider has in ProviderOrder.
const Identity = "identity"

// ProviderOrder is the order the API server tries keys in: the write key
// (or identity while none writes), the staged key, the retired keys
// newest first, identity. The first entry encrypts new writes. Entries are
// "provider/name" or Identity.
func (r Keyring) ProviderOrder() []string {
	var keys []EncryptionKey
	w := r.WriteKey()
	if w != nil {
		keys = append(keys, *w)
	}
	if s := r.Staged(); s != nil {
		keys = append(keys, *s)
	}
	keys = append(keys, r.Retired()...)
	var out []string
	if w == nil {
		out = append(out, Identity)
	}
	for _, k := range keys {
		out = append(out, k.Provider+"/"+k.Name)
	}
	if w != nil {
		out = append(out, Identity)
	}
	return out
}

// RenderEncryptionConfig renders the apiserver.config.k8s.io/v1
// EncryptionConfiguration for the keyring: Secrets only, providers in
// ProviderOrder, consecutive keys of one provider in one provider entry.
// The line after "providers:" names the provider that writes, which is
// what kube-bench's check 1.2.28 reads.
func RenderEncryptionConfig(r Keyring) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	byName := map[string]EncryptionKey{}
	for _, k := range r.Keys {
		byName[k.Provider+"/"+k.Name] = k
	}
	var b strings.Builder
	b.WriteString("# Encryption of Secrets at rest, written by clusterctl from its keyring\n")
	b.WriteString("# (.clusterctl/pki/" + KeyringFile + "). The first provider encrypts new\n")
	b.WriteString("# writes; the others only read. Do not edit: apply rewrites it.\n")
	b.WriteString("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n")
	b.WriteString("  - resources:\n      - secrets\n    providers:\n")
	open := "" // the provider whose keys list is being written
	for _, entry := range r.ProviderOrder() {
		if entry == Identity {
			b.WriteString("      - identity: {}\n")
			open = ""
			continue
		}
		k := byName[entry]
		if k.Provider != open {
			fmt.Fprintf(&b, "      - %s:\n          keys:\n", k.Provider)
			open = k.Provider
		}
		fmt.Fprintf(&b, "            - name: %s\n              secret: %s\n", k.Name, base64.StdEncoding.EncodeToString(k.Secret))
	}
	return []byte(b.String()), nil
}

// KeyringGoal is what the next keyring should move towards, and what is
// known about the cluster.
type KeyringGoal struct {
	Provider string // for new keys
	Serial   int    // the write key wanted: security.encryption_key_serial
	// ControlPlanes is how many API servers there are. With more than one,
	// a new write key is staged first.
	ControlPlanes int
	// Plaintext says Secrets are stored unencrypted: API servers of an
	// earlier clusterctl run without encryption. Only read when there is
	// no keyring yet.
	Plaintext bool
	// RolledOut says every control plane runs the current keyring's
	// configuration: the next state may be taken.
	RolledOut bool
	Now       time.Time
	Rand      io.Reader // crypto/rand when nil
}

// KeyChange is one change NextKeyring made, for the plan.
type KeyChange struct {
	Key    string // key name
	Action string // "create", "update" or "delete"
	Reason string
}

// ErrKeySerialLowered means the spec asks for an older key than the
// keyring's newest: keys are never reused.
var ErrKeySerialLowered = errors.New("encryption key serial lowered")

// NextKeyring is the keyring one step closer to the goal, and what changed;
// no changes means cur is where it should be (or must wait until it is
// rolled out). cur is nil when there is none yet. A step that removes a
// key or makes a new write key only comes once cur is rolled out, so a step
// is never taken twice in one rollout; adding a staged key needs nothing.
func NextKeyring(cur *Keyring, g KeyringGoal) (Keyring, []KeyChange, error) {
	if g.Serial < 1 {
		return Keyring{}, nil, fmt.Errorf("encryption key serial %d: want 1 or more", g.Serial)
	}
	if !slices.Contains(EncryptionProviders(), g.Provider) {
		return Keyring{}, nil, fmt.Errorf("unknown encryption provider %q (want %s)", g.Provider, strings.Join(EncryptionProviders(), " or "))
	}
	if g.Now.IsZero() {
		g.Now = time.Now()
	}
	if g.Rand == nil {
		g.Rand = rand.Reader
	}
	staging := g.ControlPlanes > 1
	newKey := func(state KeyState) (EncryptionKey, error) {
		secret := make([]byte, 32)
		if _, err := io.ReadFull(g.Rand, secret); err != nil {
			return EncryptionKey{}, fmt.Errorf("make encryption key: %w", err)
		}
		return EncryptionKey{Name: KeyName(g.Serial), Serial: g.Serial, Provider: g.Provider, Secret: secret,
			State: state, Created: g.Now.UTC().Truncate(time.Second)}, nil
	}

	if cur == nil {
		state, reason := KeyWrite, fmt.Sprintf("new %s key: Secrets are encrypted with it", g.Provider)
		switch {
		case g.Plaintext && staging:
			state = KeyStaged
			reason = fmt.Sprintf("new %s key, staged: every API server learns to read with it while Secrets are still written unencrypted; the next apply makes it the write key and rewrites every Secret", g.Provider)
		case g.Plaintext:
			reason += "; every existing Secret is rewritten encrypted once the API server uses it"
		}
		k, err := newKey(state)
		if err != nil {
			return Keyring{}, nil, err
		}
		return Keyring{FormatVersion: KeyringFormat, Keys: []EncryptionKey{k}},
			[]KeyChange{{Key: k.Name, Action: "create", Reason: reason}}, nil
	}

	next := Keyring{FormatVersion: KeyringFormat, Keys: slices.Clone(cur.Keys)}
	if newest := cur.newest(); g.Serial < newest {
		return Keyring{}, nil, fmt.Errorf("%w: security.encryption_key_serial is %d but the cluster already has %s; keys are never reused: set %d to keep it, or a higher number to rotate",
			ErrKeySerialLowered, g.Serial, KeyName(newest), newest)
	}
	set := func(name string, s KeyState) {
		for i := range next.Keys {
			if next.Keys[i].Name == name {
				next.Keys[i].State = s
			}
		}
	}
	if s := cur.Staged(); s != nil {
		if !g.RolledOut {
			return *cur, nil, nil
		}
		changes := []KeyChange{{Key: s.Name, Action: "update", Reason: "staged → write key: every API server can read with it, so it now encrypts new writes; every Secret is rewritten with it"}}
		if w := cur.WriteKey(); w != nil {
			set(w.Name, KeyRetired)
			changes = append(changes, KeyChange{Key: w.Name, Action: "update", Reason: "write key → retired: read until every Secret is rewritten, removed by the next apply"})
		}
		set(s.Name, KeyWrite)
		return next, changes, nil
	}
	if retired := cur.Retired(); len(retired) > 0 {
		if !g.RolledOut {
			return *cur, nil, nil
		}
		var changes []KeyChange
		next.Keys = slices.DeleteFunc(next.Keys, func(k EncryptionKey) bool { return k.State == KeyRetired })
		for _, k := range retired {
			changes = append(changes, KeyChange{Key: k.Name, Action: "delete", Reason: "retired: every Secret is rewritten with " + cur.WriteKey().Name + " first, then the API servers forget it"})
		}
		return next, changes, nil
	}
	w := cur.WriteKey()
	if g.Serial == w.Serial {
		return *cur, nil, nil
	}
	// A rotation: a new key for the new serial.
	if staging {
		k, err := newKey(KeyStaged)
		if err != nil {
			return Keyring{}, nil, err
		}
		next.Keys = append(next.Keys, k)
		return next, []KeyChange{{Key: k.Name, Action: "create", Reason: fmt.Sprintf("rotation from %s, step 1 of 3: new %s key, staged for reading on every API server; apply again to make it the write key", w.Name, g.Provider)}}, nil
	}
	k, err := newKey(KeyWrite)
	if err != nil {
		return Keyring{}, nil, err
	}
	set(w.Name, KeyRetired)
	next.Keys = append(next.Keys, k)
	return next, []KeyChange{
		{Key: k.Name, Action: "create", Reason: fmt.Sprintf("rotation from %s, step 1 of 2: new %s write key; every Secret is rewritten with it", w.Name, g.Provider)},
		{Key: w.Name, Action: "update", Reason: "write key → retired: read until every Secret is rewritten, removed by the next apply"},
	}, nil
}

// KeyringNote says what the keyring waits for, if anything: a plan shows
// it when a step cannot be taken yet (not every control plane runs the
// current configuration), or when the provider asked for differs from the
// write key's.
func KeyringNote(r Keyring, g KeyringGoal) string {
	if (r.Staged() != nil || len(r.Retired()) > 0) && !g.RolledOut {
		return "the encryption keyring is between two steps of a change; the next step comes once every control plane runs the current one (apply again)"
	}
	if w := r.WriteKey(); w != nil && r.Staged() == nil && w.Serial == g.Serial && w.Provider != g.Provider {
		return fmt.Sprintf("security.encryption_provider is %s but the write key %s is %s: the provider applies to new keys; raise encryption_key_serial to rotate to a %s key",
			g.Provider, w.Name, w.Provider, g.Provider)
	}
	return ""
}

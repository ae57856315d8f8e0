package pki

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// fill is a deterministic "random" source: every byte is the same.
type fill byte

func (f fill) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f)
	}
	return len(p), nil
}

func goal(serial, cps int, plaintext, rolledOut bool) KeyringGoal {
	return KeyringGoal{Provider: ProviderSecretbox, Serial: serial, ControlPlanes: cps, Plaintext: plaintext,
		RolledOut: rolledOut, Now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Rand: fill(7)}
}

func states(r Keyring) map[string]KeyState {
	out := map[string]KeyState{}
	for _, k := range r.Keys {
		out[k.Name] = k.State
	}
	return out
}

// steps runs NextKeyring from cur until it changes nothing (each step
// rolled out before the next), and returns the provider order after each.
func steps(t *testing.T, cur *Keyring, g KeyringGoal) ([][]string, Keyring) {
	t.Helper()
	var orders [][]string
	for i := 0; i < 6; i++ {
		next, changes, err := NextKeyring(cur, g)
		if err != nil {
			t.Fatal(err)
		}
		if len(changes) == 0 {
			return orders, next
		}
		orders = append(orders, next.ProviderOrder())
		cur = &next
		g.Rand = fill(8 + i)
	}
	t.Fatal("the keyring never settles")
	return nil, Keyring{}
}

// Every way into and through encryption, one apply per step: a new
// cluster writes with its first key at once; a cluster of an earlier
// clusterctl (plaintext Secrets) with one control plane too, with several
// it stages the key first; a rotation stages (HA), switches, then removes
// the old key. identity stays last once a key writes.
func TestNextKeyringSteps(t *testing.T) {
	sb := func(names ...string) []string {
		var out []string
		for _, n := range names {
			if n == Identity {
				out = append(out, n)
			} else {
				out = append(out, ProviderSecretbox+"/"+n)
			}
		}
		return out
	}
	tests := []struct {
		name string
		cur  *Keyring
		g    KeyringGoal
		want [][]string
	}{
		{"new cluster", nil, goal(1, 3, false, false), [][]string{sb("key1", Identity)}},
		{"plaintext, one control plane", nil, goal(1, 1, true, false), [][]string{sb("key1", Identity)}},
		{"plaintext, HA: staged first", nil, goal(1, 3, true, true),
			[][]string{sb(Identity, "key1"), sb("key1", Identity)}},
		{"rotation, one control plane", ring(key(1, KeyWrite)), goal(2, 1, false, true),
			[][]string{sb("key2", "key1", Identity), sb("key2", Identity)}},
		{"rotation, HA", ring(key(1, KeyWrite)), goal(2, 3, false, true),
			[][]string{sb("key1", "key2", Identity), sb("key2", "key1", Identity), sb("key2", Identity)}},
		{"in step: nothing to do", ring(key(4, KeyWrite)), goal(4, 3, false, true), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := steps(t, tt.cur, tt.g)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("provider order after each step (-want +got):\n%s", diff)
			}
		})
	}
}

func key(serial int, s KeyState) EncryptionKey {
	return EncryptionKey{Name: KeyName(serial), Serial: serial, Provider: ProviderSecretbox,
		Secret: bytes.Repeat([]byte{byte(serial)}, 32), State: s}
}

func ring(keys ...EncryptionKey) *Keyring { return &Keyring{FormatVersion: KeyringFormat, Keys: keys} }

// A step that makes a staged key write or removes a retired key waits
// until the current keyring runs on every control plane; the keyring is
// kept, with no change.
func TestNextKeyringWaitsForRollout(t *testing.T) {
	for _, cur := range []*Keyring{ring(key(1, KeyWrite), key(2, KeyStaged)), ring(key(2, KeyWrite), key(1, KeyRetired))} {
		next, changes, err := NextKeyring(cur, goal(2, 3, false, false))
		if err != nil || len(changes) != 0 {
			t.Fatalf("%v: %v %v", cur.ProviderOrder(), changes, err)
		}
		if diff := cmp.Diff(*cur, next); diff != "" {
			t.Errorf("keyring changed while waiting (-want +got):\n%s", diff)
		}
		if KeyringNote(next, goal(2, 3, false, false)) == "" {
			t.Errorf("%v: no note about the wait", cur.ProviderOrder())
		}
	}
}

// A key once made is kept: the same secret comes back from every later
// step, and a lower serial than the newest key is refused.
func TestNextKeyringKeepsKeysAndRefusesLowerSerial(t *testing.T) {
	first, _, err := NextKeyring(nil, goal(1, 1, false, false))
	if err != nil {
		t.Fatal(err)
	}
	g := goal(1, 1, false, true)
	g.Rand = fill(99)
	again, changes, err := NextKeyring(&first, g)
	if err != nil || len(changes) != 0 {
		t.Fatalf("second plan: %v %v", changes, err)
	}
	if !bytes.Equal(again.Keys[0].Secret, first.Keys[0].Secret) {
		t.Error("the key changed between two plans")
	}
	_, _, err = NextKeyring(ring(key(3, KeyWrite)), goal(2, 1, false, true))
	if !errors.Is(err, ErrKeySerialLowered) || !strings.Contains(err.Error(), "key3") {
		t.Errorf("lower serial: %v", err)
	}
	if _, _, err := NextKeyring(nil, KeyringGoal{Provider: "aesgcm", Serial: 1}); err == nil {
		t.Error("aesgcm accepted")
	}
}

// The EncryptionConfiguration: apiserver.config.k8s.io/v1, Secrets only,
// the write key's provider on the line after "providers:" (kube-bench
// 1.2.28), keys as base64 of the keyring's secrets, identity last, and
// the keyring file round-trips.
func TestRenderEncryptionConfig(t *testing.T) {
	r := ring(key(2, KeyWrite), key(1, KeyRetired))
	r.Keys[1].Provider = ProviderAESCBC
	b, err := RenderEncryptionConfig(*r)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Resources  []struct {
			Resources []string                    `yaml:"resources"`
			Providers []map[string]map[string]any `yaml:"providers"`
		} `yaml:"resources"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if cfg.APIVersion != "apiserver.config.k8s.io/v1" || cfg.Kind != "EncryptionConfiguration" || len(cfg.Resources) != 1 ||
		!cmp.Equal(cfg.Resources[0].Resources, []string{"secrets"}) {
		t.Fatalf("config:\n%s", b)
	}
	var names []string
	for _, p := range cfg.Resources[0].Providers {
		for name := range p {
			names = append(names, name)
		}
	}
	if diff := cmp.Diff([]string{"secretbox", "aescbc", "identity"}, names); diff != "" {
		t.Errorf("providers (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(b), "name: key2\n              secret: "+base64.StdEncoding.EncodeToString(r.Keys[0].Secret)) {
		t.Errorf("key2 not rendered:\n%s", b)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) == "providers:" && strings.TrimSpace(lines[i+1]) != "- secretbox:" {
			t.Errorf("line after providers: %q", lines[i+1])
		}
	}

	raw, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKeyring(raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*r, back); diff != "" {
		t.Errorf("keyring round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []Keyring{
		{Keys: []EncryptionKey{key(1, KeyRetired)}},
		{Keys: []EncryptionKey{key(1, KeyWrite), key(2, KeyWrite)}},
		{Keys: []EncryptionKey{{Name: "key1", Serial: 1, Provider: ProviderSecretbox, Secret: []byte("short"), State: KeyWrite}}},
	} {
		if _, err := bad.Marshal(); err == nil {
			t.Errorf("bad keyring %+v accepted", bad.ProviderOrder())
		}
	}
}

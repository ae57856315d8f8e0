package apply

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/bundle/bundletest"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/spec"
)

func keyChanges(changes []plan.Change) []string {
	var out []string
	for _, ch := range changes {
		if ch.Kind == "cert" && strings.HasPrefix(ch.Name, "encryption/") {
			out = append(out, ch.Action.String()+" "+ch.Name)
		}
	}
	slices.Sort(out)
	return out
}

func hasAttr(changes []plan.Change, address, attr string) bool {
	for _, ch := range changes {
		if ch.Address == address {
			for _, a := range ch.Attrs {
				if a.Name == attr {
					return true
				}
			}
		}
	}
	return false
}

// planAndApply plans s against w, saves the PKI as apply does, and returns
// the changes and the world the apply leaves.
func planAndApply(t *testing.T, s *Session, w World) ([]plan.Change, World) {
	t.Helper()
	c := &Computed{World: w, Desired: map[string]components.Desired{}}
	changes, err := s.planApply(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SavePKI(c); err != nil {
		t.Fatal(err)
	}
	return changes, installedAsPlanned(t, s, c)
}

func securitySession(t *testing.T, extra string) *Session {
	t.Helper()
	s := testSession(t)
	if extra != "" {
		c, diags := spec.Parse(map[string][]byte{"cluster.hcl": []byte(testSpec + extra)}, spec.VarInputs{Env: []string{}})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		s.Cluster = c
	}
	s.Cache = bundletest.Cache(t)
	s.agentBin = components.AgentBinaryFile{Local: "/bin/true", SHA256: strings.Repeat("ab", 32), Size: 1}
	return s
}

// A new cluster encrypts Secrets from its first apply with a key made
// once, saved with the PKI (0600) and kept by every later plan; raising
// security.encryption_key_serial rotates it over two applies (one control
// plane: the new key writes at once with the old one still read, then the
// old one goes), each shown in the plan, and then the plan is empty.
func TestPlanEncryptionKeyRotation(t *testing.T) {
	s := securitySession(t, "")
	changes, w := planAndApply(t, s, emptyWorld(s))
	if got := keyChanges(changes); !slices.Equal(got, []string{"create encryption/key1"}) {
		t.Fatalf("new cluster: %v", got)
	}
	file := filepath.Join(s.Store.PKIDir(), filepath.FromSlash(pki.KeyringFile))
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring in the state: %v %v", st, err)
	}
	saved, _ := os.ReadFile(file)
	changes, _ = planAndApply(t, s, w)
	if len(changes) != 0 {
		t.Fatalf("second plan: %v %v", componentChanges(changes), keyChanges(changes))
	}
	if again, _ := os.ReadFile(file); string(again) != string(saved) {
		t.Fatal("the key changed between plans")
	}

	rot := securitySession(t, "security {\n  encryption_key_serial = 2\n}\n")
	rot.Store = s.Store
	changes, w = planAndApply(t, rot, w)
	if got := keyChanges(changes); !slices.Equal(got, []string{"create encryption/key2", "update encryption/key1"}) {
		t.Errorf("rotation, first apply: %v", got)
	}
	if got := componentChanges(changes); !slices.Equal(got, []string{"update cp-1 kube-apiserver"}) {
		t.Errorf("rotation, first apply changes %v", got)
	}
	if !hasAttr(changes, plan.Address(components.Kind, bundle.KubeAPIServer, "cp-1"), "encryption-config.yaml:resources[0].providers[0].secretbox.keys[1].name") {
		t.Error("the plan does not show the second key")
	}
	changes, w = planAndApply(t, rot, w)
	if got := keyChanges(changes); !slices.Equal(got, []string{"delete encryption/key1"}) {
		t.Errorf("rotation, second apply: %v", got)
	}
	if got := componentChanges(changes); !slices.Equal(got, []string{"update cp-1 kube-apiserver"}) {
		t.Errorf("rotation, second apply changes %v", got)
	}
	if changes, _ = planAndApply(t, rot, w); len(changes) != 0 {
		t.Errorf("after the rotation: %v %v", componentChanges(changes), keyChanges(changes))
	}
	ring, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pki.ParseKeyring(ring)
	if err != nil || len(r.Keys) != 1 || r.WriteKey().Name != "key2" {
		t.Errorf("keyring after the rotation: %v %v", r.ProviderOrder(), err)
	}
}

// A cluster made by an earlier clusterctl (API servers without encryption,
// no keyring) gets its key and the flag in one apply: the plan shows the
// new key and the kube-apiserver change with --encryption-provider-config.
func TestPlanEncryptionOnUpgrade(t *testing.T) {
	s := securitySession(t, "")
	_, w := planAndApply(t, s, emptyWorld(s))
	if err := os.Remove(filepath.Join(s.Store.PKIDir(), filepath.FromSlash(pki.KeyringFile))); err != nil {
		t.Fatal(err)
	}
	// What the earlier release recorded: no encryption flag, no file.
	inst := w.Installed["cp-1"]
	ic := inst.Components[bundle.KubeAPIServer]
	ic.Args = slices.DeleteFunc(slices.Clone(ic.Args), func(a string) bool { return strings.HasPrefix(a, "--encryption-provider-config") })
	ic.FileAttrs.Attrs = slices.DeleteFunc(slices.Clone(ic.FileAttrs.Attrs), func(a plan.Attr) bool {
		return strings.HasPrefix(a.Name, components.EncryptionConfigFile+":") || strings.HasPrefix(a.Name, "/etc/kubernetes/pki/encryption/")
	})
	inst.Components[bundle.KubeAPIServer] = ic
	w.Installed["cp-1"] = inst
	w.Objects = nil
	for host, in := range w.Installed {
		for _, name := range in.Names() {
			w.Objects = append(w.Objects, in.Components[name].Object(host, name, nil))
		}
	}
	c := &Computed{World: w, Desired: map[string]components.Desired{}}
	changes, err := s.planApply(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := keyChanges(changes); !slices.Equal(got, []string{"create encryption/key1"}) {
		t.Fatalf("upgrade: %v", got)
	}
	for _, ch := range changes {
		if ch.Name == "encryption/key1" && !strings.Contains(ch.Reason, "rewritten") {
			t.Errorf("the plan does not say existing Secrets are rewritten: %q", ch.Reason)
		}
	}
	if !hasAttr(changes, plan.Address(components.Kind, bundle.KubeAPIServer, "cp-1"), "--encryption-provider-config") {
		t.Error("the plan does not show --encryption-provider-config")
	}
}

package spec

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestUpgradeBlock(t *testing.T) {
	c := mustParse(t, map[string]string{"a.hcl": minimal}, VarInputs{})
	if diff := cmp.Diff(defaultUpgrade(), c.Upgrade()); diff != "" {
		t.Fatalf("defaults (-want +got):\n%s", diff)
	}
	src := strings.Replace(minimal, `kubernetes_version = "1.36.3"`, `kubernetes_version = "1.36.3"
  upgrade {
    worker_batch_size = 3
    drain             = true
    drain_timeout     = "10m"
    gate_timeout      = "90s"
    keep_generations  = 4
  }`, 1)
	c = mustParse(t, map[string]string{"a.hcl": src}, VarInputs{})
	want := UpgradePolicy{WorkerBatchSize: 3, Drain: true, DrainTimeout: 10 * time.Minute, GateTimeout: 90 * time.Second, KeepGenerations: 4}
	if diff := cmp.Diff(want, c.Upgrade()); diff != "" {
		t.Fatalf("upgrade block (-want +got):\n%s", diff)
	}
}

func TestUpgradeBlockErrors(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{`worker_batch_size = 0`, "worker_batch_size"},
		{`gate_timeout = "soon"`, "Invalid duration"},
		{`drain_timeout = "0s"`, "between 1s and 24h"},
		{`drain = "yes please"`, "drain"},
		{`keep = 3`, "Unsupported argument"},
	} {
		src := strings.Replace(minimal, `kubernetes_version = "1.36.3"`, "kubernetes_version = \"1.36.3\"\n  upgrade {\n    "+tt.body+"\n  }", 1)
		_, diags := parseStrings(map[string]string{"a.hcl": src}, VarInputs{})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
			t.Errorf("%s: want an error naming %q, got %v", tt.body, tt.want, diags)
			continue
		}
		if r := diags[0].Subject; r == nil || r.Filename != "a.hcl" || r.Start.Line != 5 {
			t.Errorf("%s: error at %v, want a.hcl line 5", tt.body, r)
		}
	}
}

func TestIdentityPassphraseEnv(t *testing.T) {
	src := minimal + "ssh {\n  identity_passphrase_env = \"KEY_PW\"\n}\n"
	c := mustParse(t, map[string]string{"a.hcl": src}, VarInputs{})
	if got := c.Hosts()[0].SSH.PassphraseEnv; got != "KEY_PW" {
		t.Fatalf("PassphraseEnv = %q", got)
	}
	bad := minimal + "ssh {\n  identity_passphrase_env = \"my secret\"\n}\n"
	_, diags := parseStrings(map[string]string{"a.hcl": bad}, VarInputs{})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "Invalid identity_passphrase_env") {
		t.Fatalf("want an error, got %v", diags)
	}
}

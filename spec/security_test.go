package spec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
)

// The security block: defaults without one, every setting with one, and
// the range of encryption_key_serial kept for plan diagnostics.
func TestSecurityBlock(t *testing.T) {
	c := mustParse(t, map[string]string{"a.hcl": minimal}, VarInputs{})
	want := Security{EncryptionProvider: "secretbox", EncryptionKeySerial: 1, PodPidsLimit: 4096}
	if diff := cmp.Diff(want, c.Security()); diff != "" {
		t.Fatalf("defaults (-want +got):\n%s", diff)
	}
	src := minimal + "security {\n  encryption_provider   = \"aescbc\"\n  encryption_key_serial = 3\n  pod_pids_limit        = -1\n}\n"
	c = mustParse(t, map[string]string{"a.hcl": src}, VarInputs{})
	got := c.Security()
	want = Security{EncryptionProvider: "aescbc", EncryptionKeySerial: 3, PodPidsLimit: -1}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreTypes(hcl.Range{})); diff != "" {
		t.Fatalf("security block (-want +got):\n%s", diff)
	}
	if got.SerialRange.Filename != "a.hcl" || got.SerialRange.Start.Line != strings.Count(minimal, "\n")+3 {
		t.Errorf("serial range %v", got.SerialRange)
	}
}

func TestSecurityBlockErrors(t *testing.T) {
	line := strings.Count(minimal, "\n") + 2
	for _, tt := range []struct{ body, want string }{
		{`encryption_provider = "aesgcm"`, "200,000 writes"},
		{`encryption_provider = "identity"`, "Invalid encryption_provider"},
		{`encryption_key_serial = 0`, "encryption_key_serial"},
		{`pod_pids_limit = 10`, "Invalid pod_pids_limit"},
		{`pod_pids_limit = 0`, "Invalid pod_pids_limit"},
		{`audit_log_max_age = 30`, "Unsupported argument"},
	} {
		src := minimal + "security {\n  " + tt.body + "\n}\n"
		_, diags := parseStrings(map[string]string{"a.hcl": src}, VarInputs{})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
			t.Errorf("%s: want an error naming %q, got %v", tt.body, tt.want, diags)
			continue
		}
		if r := diags[0].Subject; r == nil || r.Filename != "a.hcl" || r.Start.Line != line {
			t.Errorf("%s: error at %v, want a.hcl line %d", tt.body, r, line)
		}
	}
	_, diags := parseStrings(map[string]string{"a.hcl": minimal + "security {}\nsecurity {}\n"}, VarInputs{})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "Duplicate security block") {
		t.Errorf("two security blocks: %v", diags)
	}
}

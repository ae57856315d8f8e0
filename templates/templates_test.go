package templates

import (
	"strings"
	"testing"
)

// A value the template needs but the data lacks is an error, never an
// empty setting in a config file.
func TestMissingValueIsAnError(t *testing.T) {
	_, err := Render(KubeProxyConfig, map[string]any{"Node": "n1"})
	if err == nil || !strings.Contains(err.Error(), "Kubeconfig") {
		t.Errorf("Render with a missing value: %v", err)
	}
}

// Values are quoted for their format: a quote or newline in a value cannot
// add a setting.
func TestValuesAreQuoted(t *testing.T) {
	b, err := Render(CNIConfList, map[string]any{"Name": "n\"x", "Bridge": "cni0", "Subnet": "10.0.0.0/24\n"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"name": "n\"x"`) || !strings.Contains(string(b), `"subnet": "10.0.0.0/24\n"`) {
		t.Errorf("CNI list not escaped:\n%s", b)
	}
	if _, err := tomlString("a\x7fb"); err == nil {
		t.Error("tomlString accepted DEL")
	}
	if s, err := tomlString(`C:\dir "x"`); err != nil || s != `"C:\\dir \"x\""` {
		t.Errorf("tomlString: %s %v", s, err)
	}
}

func TestUnknownTemplate(t *testing.T) {
	if _, err := Render("nope.tmpl", nil); err == nil {
		t.Error("Render of an unknown template succeeded")
	}
}

package components

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

const registrySpec = testSpec + `
registry "images.example.com" {
  mirrors      = ["https://10.0.0.5:5000", "http://10.0.0.6:5000/"]
  username_env = "REG_USER"
  password_env = "REG_PASS"
}
registry "10.0.0.9:5000" {}
`

// hosts.toml: the mirrors in order with the credentials as a header, the
// file sensitive; the folder containerd reads is named after the settings,
// not the secrets.
func TestRegistryConfig(t *testing.T) {
	c := loadSpecEnv(t, registrySpec, []string{"REG_USER=u", "REG_PASS=p4ss"})
	dir, files := registryConfig(c.Registries())
	if !strings.HasPrefix(dir, RegistriesDir+"/") || len(files) != 2 {
		t.Fatalf("config_path %s, files %+v", dir, files)
	}
	f := files[0]
	if f.Path != dir+"/images.example.com/hosts.toml" || !f.Sensitive || f.Mode != 0o600 {
		t.Errorf("hosts.toml of a registry with credentials: %s sensitive %v mode %o", f.Path, f.Sensitive, f.Mode)
	}
	var h struct {
		Server string `toml:"server"`
		Host   map[string]struct {
			Capabilities []string          `toml:"capabilities"`
			Header       map[string]string `toml:"header"`
		} `toml:"host"`
	}
	if err := toml.Unmarshal(f.Data, &h); err != nil {
		t.Fatalf("%v\n%s", err, f.Data)
	}
	m := h.Host["https://10.0.0.5:5000"]
	if h.Server != "https://images.example.com" || len(h.Host) != 2 || m.Header["authorization"] != "Basic dTpwNHNz" || len(m.Capabilities) != 2 {
		t.Errorf("hosts.toml:\n%s", f.Data)
	}
	if _, ok := h.Host["http://10.0.0.6:5000"]; !ok || strings.Index(string(f.Data), "10.0.0.5") > strings.Index(string(f.Data), "10.0.0.6") {
		t.Errorf("mirrors out of order or the trailing slash kept:\n%s", f.Data)
	}
	if files[1].Sensitive || strings.Contains(string(files[1].Data), "[host") {
		t.Errorf("a registry block without settings: %+v", files[1])
	}
	// Another password: the same folder (the secret is not in its name).
	c2 := loadSpecEnv(t, registrySpec, []string{"REG_USER=u", "REG_PASS=other"})
	if dir2, _ := registryConfig(c2.Registries()); dir2 != dir {
		t.Errorf("the folder changed with the password: %s, %s", dir, dir2)
	}
}

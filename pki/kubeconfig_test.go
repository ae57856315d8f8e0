package pki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseYAML reads the block-style YAML subset kubeconfigs are written in:
// mappings, sequences of mappings ("- key: ..."), double-quoted and plain
// scalars, and "{}". It is strict about indentation so that a mis-indented
// line fails the test instead of being silently re-nested.
func parseYAML(t *testing.T, s string) any {
	t.Helper()
	type line struct {
		indent int
		text   string
	}
	var lines []line
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		trimmed := strings.TrimLeft(l, " ")
		lines = append(lines, line{len(l) - len(trimmed), trimmed})
	}
	scalar := func(v string) any {
		switch {
		case v == "{}":
			return map[string]any{}
		case strings.HasPrefix(v, `"`):
			var out string
			if err := json.Unmarshal([]byte(v), &out); err != nil {
				t.Fatalf("bad quoted scalar %s: %v", v, err)
			}
			return out
		}
		return v
	}
	var block func(i, indent int) (any, int)
	block = func(i, indent int) (any, int) {
		if strings.HasPrefix(lines[i].text, "- ") {
			var seq []any
			for i < len(lines) && lines[i].indent == indent && strings.HasPrefix(lines[i].text, "- ") {
				// "- k: v" opens a mapping two columns further in.
				lines[i] = line{indent + 2, lines[i].text[2:]}
				var item any
				item, i = block(i, indent+2)
				seq = append(seq, item)
			}
			return seq, i
		}
		m := map[string]any{}
		for i < len(lines) && lines[i].indent == indent && !strings.HasPrefix(lines[i].text, "- ") {
			k, v, ok := strings.Cut(lines[i].text, ":")
			if !ok {
				t.Fatalf("line %q: no colon", lines[i].text)
			}
			if _, dup := m[k]; dup {
				t.Fatalf("duplicate key %q", k)
			}
			v = strings.TrimPrefix(v, " ")
			i++
			if v != "" {
				m[k] = scalar(v)
				continue
			}
			if i >= len(lines) || lines[i].indent < indent ||
				(lines[i].indent == indent && !strings.HasPrefix(lines[i].text, "- ")) {
				t.Fatalf("key %q has no value", k)
			}
			m[k], i = block(i, lines[i].indent)
		}
		if i < len(lines) && lines[i].indent > indent {
			t.Fatalf("line %q: unexpected indentation", lines[i].text)
		}
		return m, i
	}
	v, i := block(0, 0)
	if i != len(lines) {
		t.Fatalf("trailing lines from %q", lines[i].text)
	}
	return v
}

func TestKubeconfigStructure(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})

	out, err := RenderKubeconfig(s, tab, KubeconfigKubelet("n1"))
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(rel string) string { return base64.StdEncoding.EncodeToString(readFile(t, s, rel)) }
	want := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []any{map[string]any{
			"name": "lab",
			"cluster": map[string]any{
				"certificate-authority-data": b64("ca.crt"),
				"server":                     "https://10.0.0.11:6443",
			},
		}},
		"contexts": []any{map[string]any{
			"name":    "system:node:n1@lab",
			"context": map[string]any{"cluster": "lab", "user": "system:node:n1"},
		}},
		"current-context": "system:node:n1@lab",
		"preferences":     map[string]any{},
		"users": []any{map[string]any{
			"name": "system:node:n1",
			"user": map[string]any{
				"client-certificate-data": b64("kubelet/n1-client.crt"),
				"client-key-data":         b64("kubelet/n1-client.key"),
			},
		}},
	}
	if d := cmp.Diff(want, parseYAML(t, string(out))); d != "" {
		t.Errorf("kubeconfig (-want +got):\n%s", d)
	}

	// Deterministic: rendering twice gives the same bytes, so an unchanged
	// kubeconfig is never uploaded again.
	again, _ := RenderKubeconfig(s, tab, KubeconfigKubelet("n1"))
	if string(again) != string(out) {
		t.Error("rendering is not deterministic")
	}
}

func TestKubeconfigQuotesAwkwardNames(t *testing.T) {
	out := Kubeconfig(KubeconfigData{ClusterName: `a "b": #c`, Server: "https://x:1", UserName: "u\\v", CACert: []byte("C"), ClientCert: []byte("D"), ClientKey: []byte("K")})
	m := parseYAML(t, string(out)).(map[string]any)
	if got := m["current-context"]; got != `u\v@a "b": #c` {
		t.Errorf("current-context %q", got)
	}
}

func TestRenderKubeconfigRefusesBrokenPairs(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})
	if err := s.Write("admin-client.key", readFile(t, s, "scheduler-client.key"), ModeKey); err != nil {
		t.Fatal(err)
	}
	_, err := RenderKubeconfig(s, tab, KubeconfigAdmin)
	if err == nil || !strings.Contains(err.Error(), "admin-client.crt does not match admin-client.key") {
		t.Errorf("err %v", err)
	}
	if _, err := RenderKubeconfig(s, tab, "nope.conf"); err == nil {
		t.Error("unknown kubeconfig rendered")
	}
}

// With a kubectl on PATH, the admin kubeconfig must work for real: kubectl
// reads it, trusts the API server certificate, and authenticates with the
// client certificate against a TLS server that requires one.
func TestKubeconfigWithKubectl(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH; the YAML structure is checked by TestKubeconfigStructure")
	}
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	if _, err := Ensure(s, tab, Options{}); err != nil {
		t.Fatal(err)
	}
	serving, err := tls.X509KeyPair(readFile(t, s, "apiserver.crt"), readFile(t, s, "apiserver.key"))
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AppendCertsFromPEM(readFile(t, s, "ca.crt"))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := r.TLS.PeerCertificates[0].Subject
		fmt.Fprintf(w, `{"user":%q,"groups":%q}`, u.CommonName, u.Organization)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serving}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients}
	srv.StartTLS()
	defer srv.Close()

	k, _ := tab.Kubeconfig(KubeconfigAdmin)
	k.Server = srv.URL // https://127.0.0.1:port, a SAN of the apiserver certificate
	tab.Kubeconfigs[0] = k
	conf, err := RenderKubeconfig(s, tab, KubeconfigAdmin)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	path := filepath.Join(home, "admin.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kubectl, "--kubeconfig", path, "get", "--raw", "/whoami")
	cmd.Env = append(os.Environ(), "HOME="+home)
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, got)
	}
	if want := `{"user":"kubernetes-admin","groups":["system:masters"]}`; strings.TrimSpace(string(got)) != want {
		t.Errorf("kubectl got %s, want %s", got, want)
	}
}

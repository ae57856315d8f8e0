package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeUnit(t *testing.T) {
	full := `{
  "name": "etcd",
  "version": "3.6.5",
  "exec": "/opt/clusterctl/pkg/etcd/3.6.5/linux-amd64/etcd",
  "args": ["--config-file", "/etc/clusterctl/etcd/4/etcd.yaml"],
  "env": {"ETCD_UNSUPPORTED_ARCH": "arm64"},
  "dir": "/var/lib/etcd",
  "health": {"type": "https", "url": "https://127.0.0.1:2379/health", "ca_file": "/etc/kubernetes/pki/etcd/ca.crt",
             "cert_file": "/etc/kubernetes/pki/etcd/healthcheck-client.crt", "key_file": "/etc/kubernetes/pki/etcd/healthcheck-client.key",
             "interval": "2s", "timeout": "1500ms"},
  "stop_signal": "SIGTERM",
  "stop_timeout": "30s",
  "after": ["containerd"],
  "limits": {"nofile": 1048576},
  "oom_score_adj": -900
}`
	u, err := DecodeUnit("etcd/4/unit.json", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	adj := -900
	want := Unit{
		Name: "etcd", Version: "3.6.5", Exec: "/opt/clusterctl/pkg/etcd/3.6.5/linux-amd64/etcd",
		Args: []string{"--config-file", "/etc/clusterctl/etcd/4/etcd.yaml"},
		Env:  map[string]string{"ETCD_UNSUPPORTED_ARCH": "arm64"}, Dir: "/var/lib/etcd",
		Health: Health{
			Type: "https", URL: "https://127.0.0.1:2379/health", CAFile: "/etc/kubernetes/pki/etcd/ca.crt",
			CertFile: "/etc/kubernetes/pki/etcd/healthcheck-client.crt", KeyFile: "/etc/kubernetes/pki/etcd/healthcheck-client.key",
			Interval: Duration(2 * time.Second), Timeout: Duration(1500 * time.Millisecond),
		},
		StopSignal: "SIGTERM", StopTimeout: Duration(30 * time.Second), After: []string{"containerd"},
		Limits: Limits{NOFILE: 1048576}, OOMScoreAdj: &adj,
	}
	if d := cmp.Diff(want, u); d != "" {
		t.Fatalf("decoded unit (-want +got):\n%s", d)
	}
	// EncodeUnit and DecodeUnit agree.
	b, err := EncodeUnit(u)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := DecodeUnit("x", b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(u, u2); d != "" {
		t.Fatalf("round trip (-want +got):\n%s", d)
	}

	bad := []struct{ name, json, want string }{
		{"syntax error with line", "{\n  \"name\": \"etcd\",\n  \"exec\": \n}", "u.json:4: invalid character '}'"},
		{"wrong type with line", "{\n\"name\": \"etcd\",\n\"args\": \"--x\"}", "u.json:3: json: cannot unmarshal string"},
		{"unknown field", `{"name":"etcd","exec":"/x","health":{"type":"none"},"restart":"always"}`, `unknown field "restart"`},
		{"relative exec", `{"name":"etcd","exec":"etcd","health":{"type":"none"}}`, `exec "etcd" must be an absolute path`},
		{"bad name", `{"name":"Etcd","exec":"/x","health":{"type":"none"}}`, `invalid component name "Etcd"`},
		{"reserved name", `{"name":"agent","exec":"/x","health":{"type":"none"}}`, `invalid component name "agent"`},
		{"no health type", `{"name":"etcd","exec":"/x","health":{}}`, "health: type is required"},
		{"https without url", `{"name":"etcd","exec":"/x","health":{"type":"https","url":"http://x"}}`, "needs url starting with https://"},
		{"cert without key", `{"name":"etcd","exec":"/x","health":{"type":"https","url":"https://x","cert_file":"/c"}}`, "cert_file and key_file go together"},
		{"tcp without address", `{"name":"etcd","exec":"/x","health":{"type":"tcp"}}`, "needs address"},
		{"bad duration", `{"name":"etcd","exec":"/x","health":{"type":"none","interval":"2 seconds"}}`, `time: unknown unit " seconds"`},
		{"numeric duration", `{"name":"etcd","exec":"/x","health":{"type":"none","interval":2}}`, `duration must be a string like "2s"`},
		{"bad signal", `{"name":"etcd","exec":"/x","health":{"type":"none"},"stop_signal":"SIGFOO"}`, `unknown stop_signal "SIGFOO"`},
		{"after itself", `{"name":"etcd","exec":"/x","health":{"type":"none"},"after":["etcd"]}`, "names the unit itself"},
		{"two errors", `{"name":"etcd","exec":"x","health":{"type":"bogus"}}`, "must be an absolute path\nhealth: unknown type \"bogus\""},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeUnit("u.json", []byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestResolveCurrent(t *testing.T) {
	root := t.TempDir()
	p := Paths{ConfigRoot: root}
	write := func(name string, gen int, body string) {
		dir := p.GenerationDir(name, gen)
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, UnitFile), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unit := func(name string) string {
		return `{"name":"` + name + `","exec":"/bin/true","health":{"type":"none"}}`
	}
	write("etcd", 1, unit("etcd"))
	write("etcd", 2, unit("etcd"))
	os.Symlink("2", p.CurrentLink("etcd"))
	write("kubelet", 7, unit("kubelet"))
	os.Symlink(p.GenerationDir("kubelet", 7), p.CurrentLink("kubelet")) // absolute targets work too
	write("proxy", 1, unit("kube-proxy"))
	os.Symlink("1", p.CurrentLink("proxy"))
	os.MkdirAll(p.ComponentDir("escape"), 0o755)
	os.Symlink("../etcd/1", p.CurrentLink("escape"))
	write("zero", 1, unit("zero"))
	os.Symlink("01", p.CurrentLink("zero"))
	os.MkdirAll(p.ComponentDir("unused"), 0o755)                    // no current: not a component
	os.WriteFile(filepath.Join(root, "installed.json"), nil, 0o644) // files are skipped
	os.MkdirAll(filepath.Join(root, ".staging", "1"), 0o755)

	units, errs, err := ScanComponents(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 2 || units["etcd"].Generation != 2 || units["kubelet"].Generation != 7 || units["etcd"].Dir != p.GenerationDir("etcd", 2) {
		t.Fatalf("units: %+v", units)
	}
	wantErr := map[string]string{
		"proxy":  `name "kube-proxy" does not match the component folder "proxy"`,
		"escape": "want a generation folder",
		"zero":   "want a generation folder",
	}
	if len(errs) != len(wantErr) {
		t.Fatalf("errors: %v", errs)
	}
	for name, want := range wantErr {
		if errs[name] == nil || !strings.Contains(errs[name].Error(), want) {
			t.Errorf("%s: error %v, want %q", name, errs[name], want)
		}
	}

	// The hash covers every file of the generation folder.
	h1 := units["etcd"].Hash
	os.WriteFile(filepath.Join(p.GenerationDir("etcd", 2), "etcd.yaml"), []byte("a"), 0o644)
	r, _ := ResolveCurrent(p, "etcd")
	if r.Hash == h1 {
		t.Error("hash ignores a new file")
	}
	os.WriteFile(filepath.Join(p.GenerationDir("etcd", 2), "etcd.yaml"), []byte("b"), 0o644)
	r2, _ := ResolveCurrent(p, "etcd")
	if r2.Hash == r.Hash {
		t.Error("hash ignores a changed file")
	}
	r3, _ := ResolveCurrent(p, "etcd")
	if r3.Hash != r2.Hash {
		t.Error("hash is not stable")
	}
	os.Remove(p.CurrentLink("etcd"))
	if _, err := ResolveCurrent(p, "etcd"); err == nil || !strings.Contains(err.Error(), ErrNoCurrent.Error()) {
		t.Errorf("no current: %v", err)
	}
}

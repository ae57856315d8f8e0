package pki

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func hostListing(files []HostFile) []string {
	var out []string
	for _, f := range files {
		src := f.Local
		if f.Kubeconfig != "" {
			src = "kubeconfig " + f.Kubeconfig
		}
		out = append(out, fmt.Sprintf("%s %o %s", f.Path, f.Mode, src))
	}
	return out
}

func TestHostFiles(t *testing.T) {
	tab := mustTable(t, haCluster())
	// cp1 is control plane, etcd member and node.
	wantCP1 := []string{
		"/etc/kubernetes/admin.conf 600 kubeconfig admin.conf",
		"/etc/kubernetes/controller-manager.conf 600 kubeconfig controller-manager.conf",
		"/etc/kubernetes/kube-proxy.conf 600 kubeconfig kube-proxy.conf",
		"/etc/kubernetes/kubelet.conf 600 kubeconfig kubelet-cp1.conf",
		"/etc/kubernetes/pki/apiserver-etcd-client.crt 644 apiserver-etcd-client.crt",
		"/etc/kubernetes/pki/apiserver-etcd-client.key 600 apiserver-etcd-client.key",
		"/etc/kubernetes/pki/apiserver-kubelet-client.crt 644 apiserver-kubelet-client.crt",
		"/etc/kubernetes/pki/apiserver-kubelet-client.key 600 apiserver-kubelet-client.key",
		"/etc/kubernetes/pki/apiserver.crt 644 apiserver.crt",
		"/etc/kubernetes/pki/apiserver.key 600 apiserver.key",
		"/etc/kubernetes/pki/ca.crt 644 ca.crt",
		"/etc/kubernetes/pki/ca.key 600 ca.key",
		"/etc/kubernetes/pki/etcd/ca.crt 644 etcd/ca.crt",
		"/etc/kubernetes/pki/etcd/ca.key 600 etcd/ca.key",
		"/etc/kubernetes/pki/etcd/healthcheck-client.crt 644 etcd/healthcheck-client.crt",
		"/etc/kubernetes/pki/etcd/healthcheck-client.key 600 etcd/healthcheck-client.key",
		"/etc/kubernetes/pki/etcd/peer-cp1.crt 644 etcd/peer-cp1.crt",
		"/etc/kubernetes/pki/etcd/peer-cp1.key 600 etcd/peer-cp1.key",
		"/etc/kubernetes/pki/etcd/server-cp1.crt 644 etcd/server-cp1.crt",
		"/etc/kubernetes/pki/etcd/server-cp1.key 600 etcd/server-cp1.key",
		"/etc/kubernetes/pki/front-proxy-ca.crt 644 front-proxy-ca.crt",
		"/etc/kubernetes/pki/front-proxy-ca.key 600 front-proxy-ca.key",
		"/etc/kubernetes/pki/front-proxy-client.crt 644 front-proxy-client.crt",
		"/etc/kubernetes/pki/front-proxy-client.key 600 front-proxy-client.key",
		"/etc/kubernetes/pki/kubelet/cp1-serving.crt 644 kubelet/cp1-serving.crt",
		"/etc/kubernetes/pki/kubelet/cp1-serving.key 600 kubelet/cp1-serving.key",
		"/etc/kubernetes/pki/sa.key 600 sa.key",
		"/etc/kubernetes/pki/sa.pub 644 sa.pub",
		"/etc/kubernetes/scheduler.conf 600 kubeconfig scheduler.conf",
	}
	if d := cmp.Diff(wantCP1, hostListing(HostFiles(tab, "cp1"))); d != "" {
		t.Errorf("cp1 (-want +got):\n%s", d)
	}
	wantW1 := []string{
		"/etc/kubernetes/kube-proxy.conf 600 kubeconfig kube-proxy.conf",
		"/etc/kubernetes/kubelet.conf 600 kubeconfig kubelet-w1.conf",
		"/etc/kubernetes/pki/ca.crt 644 ca.crt",
		"/etc/kubernetes/pki/kubelet/w1-serving.crt 644 kubelet/w1-serving.crt",
		"/etc/kubernetes/pki/kubelet/w1-serving.key 600 kubelet/w1-serving.key",
	}
	if d := cmp.Diff(wantW1, hostListing(HostFiles(tab, "w1"))); d != "" {
		t.Errorf("w1 (-want +got):\n%s", d)
	}
	if got := HostFiles(tab, "nobody"); len(got) != 0 {
		t.Errorf("unknown host gets %v", got)
	}

	// An etcd-only member gets its own etcd files and nothing of the
	// Kubernetes CA.
	c := haCluster()
	c.EtcdMembers = []Node{{Name: "e1", Addresses: addrs("10.0.0.31")}}
	wantE1 := []string{
		"/etc/kubernetes/pki/etcd/ca.crt 644 etcd/ca.crt",
		"/etc/kubernetes/pki/etcd/healthcheck-client.crt 644 etcd/healthcheck-client.crt",
		"/etc/kubernetes/pki/etcd/healthcheck-client.key 600 etcd/healthcheck-client.key",
		"/etc/kubernetes/pki/etcd/peer-e1.crt 644 etcd/peer-e1.crt",
		"/etc/kubernetes/pki/etcd/peer-e1.key 600 etcd/peer-e1.key",
		"/etc/kubernetes/pki/etcd/server-e1.crt 644 etcd/server-e1.crt",
		"/etc/kubernetes/pki/etcd/server-e1.key 600 etcd/server-e1.key",
	}
	if d := cmp.Diff(wantE1, hostListing(HostFiles(mustTable(t, c), "e1"))); d != "" {
		t.Errorf("e1 (-want +got):\n%s", d)
	}
}

// rootedReader reads absolute host paths under a local folder, standing in
// for a host's file system.
type rootedReader string

func (r rootedReader) Read(p string) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(r), filepath.FromSlash(p)))
}

// install writes a host's files under root as apply would.
func install(t *testing.T, s Reader, tab Table, host, root string) {
	t.Helper()
	for _, f := range HostFiles(tab, host) {
		data, err := HostFileData(s, tab, f)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHostFileData(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, haCluster())
	mustEnsure(t, s, tab, Options{Now: t0})
	for _, f := range HostFiles(tab, "w2") {
		data, err := HostFileData(s, tab, f)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case f.Path == "/etc/kubernetes/kubelet.conf":
			if !strings.Contains(string(data), `user: "system:node:w2"`) {
				t.Errorf("w2 kubelet.conf is not w2's:\n%s", data)
			}
		case f.Local != "":
			if string(data) != string(readFile(t, s, f.Local)) {
				t.Errorf("%s differs from %s", f.Path, f.Local)
			}
		}
	}
	if _, err := HostFileData(s, tab, HostFile{Path: "/x"}); err == nil {
		t.Error("empty host file accepted")
	}
}

// Lost local state: restore from one control plane. The CAs, the
// service-account key, that host's certificates and the client
// certificates inside its kubeconfigs are all kept; only what lives on
// other hosts alone is created anew.
func TestRestoreFromControlPlane(t *testing.T) {
	orig := DirStore{Root: t.TempDir()}
	tab := mustTable(t, haCluster())
	mustEnsure(t, orig, tab, Options{Now: t0})
	hostRoot := t.TempDir()
	install(t, orig, tab, "cp2", hostRoot)

	lost := DirStore{Root: t.TempDir()}
	written, err := Restore(lost, rootedReader(hostRoot), tab, "cp2")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range written {
		if string(readFile(t, lost, p)) != string(readFile(t, orig, p)) {
			t.Errorf("%s restored with other content", p)
		}
		info, err := os.Stat(filepath.Join(lost.Root, p))
		if err != nil {
			t.Fatal(err)
		}
		want := ModeCert
		if strings.HasSuffix(p, ".key") {
			want = ModeKey
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", p, info.Mode().Perm(), want)
		}
	}

	rep, err := Check(lost, tab, Options{Now: t0.Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	created := map[string]Action{}
	for _, x := range rep.Changes() {
		created[x.ID] = x.Action
	}
	want := map[string]Action{}
	for _, id := range []string{"admin-client", "etcd/peer-cp1", "etcd/peer-cp3", "etcd/server-cp1", "etcd/server-cp3",
		"kubelet/cp1-client", "kubelet/cp1-serving", "kubelet/cp3-client", "kubelet/cp3-serving",
		"kubelet/w1-client", "kubelet/w1-serving", "kubelet/w2-client", "kubelet/w2-serving"} {
		want[id] = ActionCreate
	}
	// admin.conf on a control plane embeds the admin certificate.
	delete(want, "admin-client")
	if d := cmp.Diff(want, created); d != "" {
		t.Errorf("after restore (-want +got):\n%s", d)
	}
	if w := rep.Warnings(); len(w) != 0 {
		t.Errorf("restore leads to warnings: %q", w)
	}

	// Restoring again is a no-op; restoring over different local files is
	// refused.
	if again, err := Restore(lost, rootedReader(hostRoot), tab, "cp2"); err != nil || len(again) != 0 {
		t.Errorf("second restore: %v %v", again, err)
	}
	if err := lost.Write("ca.crt", readFile(t, orig, "etcd/ca.crt"), ModeCert); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(lost, rootedReader(hostRoot), tab, "cp2")
	if err == nil || !strings.Contains(err.Error(), "pki restore from cp2: /etc/kubernetes/pki/ca.crt differs from the local ca.crt; refusing to overwrite") {
		t.Errorf("err %v", err)
	}
}

func TestRestoreRejectsCorruptHostFiles(t *testing.T) {
	orig := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	mustEnsure(t, orig, tab, Options{Now: t0})
	for _, tc := range []struct {
		file, content, want string
		mangle              func(string) string
	}{
		{file: "/etc/kubernetes/pki/ca.key", content: "junk", want: "/etc/kubernetes/pki/ca.key: no PEM data"},
		{file: "/etc/kubernetes/admin.conf", content: "apiVersion: v1\n", want: "/etc/kubernetes/admin.conf: no embedded client certificate and key"},
		{file: "/etc/kubernetes/scheduler.conf", mangle: func(s string) string {
			// Swap in another user's key.
			i := strings.Index(s, "client-key-data:")
			return s[:i] + "client-key-data: " + base64.StdEncoding.EncodeToString(readFile(t, orig, "admin-client.key")) + "\n"
		}, want: "/etc/kubernetes/scheduler.conf: client certificate does not match client key"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			hostRoot := t.TempDir()
			install(t, orig, tab, "n1", hostRoot)
			p := filepath.Join(hostRoot, tc.file)
			content := tc.content
			if tc.mangle != nil {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				content = tc.mangle(string(b))
			}
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			dst := DirStore{Root: t.TempDir()}
			written, err := Restore(dst, rootedReader(hostRoot), tab, "n1")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v", err)
			}
			if len(written) == 0 {
				t.Error("the good files were not restored")
			}
		})
	}
}

func TestDirStoreRejectsEscapingPaths(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	for _, p := range []string{"../x", "/etc/passwd", "a/../../x", "", "."} {
		if err := s.Write(p, []byte("x"), ModeKey); err == nil {
			t.Errorf("write %q accepted", p)
		}
		if _, err := s.Read(p); err == nil {
			t.Errorf("read %q accepted", p)
		}
	}
}

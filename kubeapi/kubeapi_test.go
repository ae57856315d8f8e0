package kubeapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/clusterctl/clusterctl/pki"
)

func node(labels map[string]string, ann map[string]string, taints ...Taint) Node {
	var n Node
	n.Metadata.Name = "n1"
	n.Metadata.Labels = labels
	n.Metadata.Annotations = ann
	n.Spec.Taints = taints
	return n
}

func TestNodeMetaPatch(t *testing.T) {
	cp := Taint{Key: "node-role.kubernetes.io/control-plane", Effect: "NoSchedule"}
	notReady := Taint{Key: "node.kubernetes.io/not-ready", Effect: "NoSchedule"}
	tests := []struct {
		name   string
		node   Node
		labels map[string]string
		taints []Taint
		want   string // JSON of the patch, "" for none
	}{
		{"new node: labels, taint and the record of both",
			node(map[string]string{"kubernetes.io/hostname": "n1"}, nil, notReady),
			map[string]string{"node-role.kubernetes.io/control-plane": ""}, []Taint{cp},
			`{"metadata":{"annotations":{"clusterctl.io/managed-labels":"node-role.kubernetes.io/control-plane","clusterctl.io/managed-taints":"node-role.kubernetes.io/control-plane:NoSchedule"},"labels":{"node-role.kubernetes.io/control-plane":""}},"spec":{"taints":[{"key":"node.kubernetes.io/not-ready","effect":"NoSchedule"},{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"}]}}`},
		{"already in place: no patch",
			node(map[string]string{"a": "1"}, map[string]string{ManagedLabelsAnnotation: "a", ManagedTaintsAnnotation: cp.id()}, cp),
			map[string]string{"a": "1"}, []Taint{cp}, ""},
		{"removed from the spec: only what clusterctl set goes",
			node(map[string]string{"a": "1", "b": "2", "mine": "x"}, map[string]string{ManagedLabelsAnnotation: "a,b", ManagedTaintsAnnotation: cp.id()}, cp, notReady),
			map[string]string{"a": "1"}, nil,
			`{"metadata":{"annotations":{"clusterctl.io/managed-labels":"a","clusterctl.io/managed-taints":""},"labels":{"b":null}},"spec":{"taints":[{"key":"node.kubernetes.io/not-ready","effect":"NoSchedule"}]}}`},
		{"a changed value",
			node(map[string]string{"a": "1"}, map[string]string{ManagedLabelsAnnotation: "a"}),
			map[string]string{"a": "2"}, nil,
			`{"metadata":{"labels":{"a":"2"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := NodeMetaPatch(tt.node, tt.labels, tt.taints)
			if tt.want == "" {
				if ok {
					t.Errorf("patch %v, want none", p)
				}
				return
			}
			b, _ := json.Marshal(p)
			if d := cmp.Diff(tt.want, string(b)); d != "" {
				t.Errorf("patch (-want +got):\n%s", d)
			}
		})
	}
}

func TestParseTaint(t *testing.T) {
	for in, want := range map[string]Taint{
		"k=v:NoExecute": {Key: "k", Value: "v", Effect: "NoExecute"},
		"k:NoSchedule":  {Key: "k", Effect: "NoSchedule"},
	} {
		got, err := ParseTaint(in)
		if err != nil || got != want {
			t.Errorf("ParseTaint(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"k", "k:Never", ":NoSchedule"} {
		if _, err := ParseTaint(bad); err == nil {
			t.Errorf("ParseTaint(%q) accepted", bad)
		}
	}
}

// fakeAPI is an API server holding one Node, checking client certificates.
type fakeAPI struct {
	mu      sync.Mutex
	node    map[string]any
	rv      int
	patches []string
	// conflictOnce makes the first patch lose a race with another writer.
	conflictOnce bool
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "system:node:n1" {
		http.Error(w, `{"message":"no client certificate"}`, http.StatusUnauthorized)
		return
	}
	if r.URL.Path != "/api/v1/nodes/n1" {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"nodes \"x\" not found"}`)
		return
	}
	meta := f.node["metadata"].(map[string]any)
	switch r.Method {
	case http.MethodGet:
	case http.MethodPatch:
		b, _ := io.ReadAll(r.Body)
		f.patches = append(f.patches, string(b))
		var p map[string]any
		_ = json.Unmarshal(b, &p)
		pm := p["metadata"].(map[string]any)
		if f.conflictOnce {
			f.conflictOnce = false
			f.rv++
			meta["resourceVersion"] = itoa(f.rv)
		}
		if pm["resourceVersion"] != meta["resourceVersion"] {
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"message":"the object has been modified"}`)
			return
		}
		for _, k := range []string{"labels", "annotations"} {
			m, _ := meta[k].(map[string]any)
			if m == nil {
				m = map[string]any{}
			}
			for kk, v := range pm[k].(map[string]any) {
				if v == nil {
					delete(m, kk)
				} else {
					m[kk] = v
				}
			}
			meta[k] = m
		}
		if s, ok := p["spec"]; ok {
			f.node["spec"] = s
		}
		f.rv++
		meta["resourceVersion"] = itoa(f.rv)
	}
	json.NewEncoder(w).Encode(f.node)
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// The client reads a kubeconfig as clusterctl writes it, authenticates with
// its certificate, verifies the server, reads and patches a Node.
func TestClientAgainstServer(t *testing.T) {
	api := &fakeAPI{node: map[string]any{
		"metadata": map[string]any{"name": "n1", "resourceVersion": "7", "labels": map[string]any{"kubernetes.io/hostname": "n1"}},
		"status": map[string]any{
			"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			"nodeInfo":   map[string]any{"kubeletVersion": "v1.37.2"},
		},
	}, rv: 7}
	srv := httptest.NewUnstartedServer(api)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()

	certPEM, keyPEM := selfSigned(t, "system:node:n1")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	path := filepath.Join(t.TempDir(), "kubelet.conf")
	kc := pki.Kubeconfig(pki.KubeconfigData{ClusterName: "t", Server: srv.URL, CACert: caPEM, UserName: "system:node:n1", ClientCert: certPEM, ClientKey: keyPEM})
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	n, err := c.GetNode(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := n.Ready(); !ok || n.Status.NodeInfo.KubeletVersion != "v1.37.2" {
		t.Errorf("node: ready %v (%s), version %q", ok, why, n.Status.NodeInfo.KubeletVersion)
	}
	if _, err := c.GetNode(ctx, "x"); !IsNotFound(err) {
		t.Errorf("GetNode of a missing node: %v, want not found", err)
	}

	// Another writer updates the node between the read and the first
	// patch: the patch is refused and the sync reads again.
	api.mu.Lock()
	api.conflictOnce = true
	api.mu.Unlock()
	changed, err := c.SyncNodeMeta(ctx, "n1", map[string]string{"node-role.kubernetes.io/worker": ""}, []Taint{{Key: "k", Value: "v", Effect: "NoExecute"}})
	if err != nil || !changed {
		t.Fatalf("SyncNodeMeta: changed %v, %v", changed, err)
	}
	n, err = c.GetNode(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Metadata.Labels["node-role.kubernetes.io/worker"]; !ok || len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Value != "v" {
		t.Errorf("after sync: labels %v taints %v", n.Metadata.Labels, n.Spec.Taints)
	}
	again, err := c.SyncNodeMeta(ctx, "n1", map[string]string{"node-role.kubernetes.io/worker": ""}, []Taint{{Key: "k", Value: "v", Effect: "NoExecute"}})
	if err != nil || again {
		t.Errorf("second SyncNodeMeta: changed %v, %v; want no change", again, err)
	}
	if len(api.patches) != 2 || !strings.Contains(api.patches[0], `"resourceVersion":"7"`) || !strings.Contains(api.patches[1], `"resourceVersion":"8"`) {
		t.Errorf("want a refused patch against version 7, then one against 8: %q", api.patches)
	}
}

func TestLoadRefusesIncompleteKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.conf")
	os.WriteFile(path, []byte("apiVersion: v1\ncurrent-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: https://x}\n"), 0o600)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "embedded") {
		t.Errorf("Load: %v", err)
	}
}

// Package kubeapitest is an in-memory API server for tests of what speaks
// package kubeapi's object calls: server-side apply (the object as sent
// becomes the stored object), get, delete and list by one key=value label
// selector, over TLS with a client certificate, as kubeapi.Load expects.
// It is a store, not Kubernetes: no defaulting, no controllers.
package kubeapitest

import (
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
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/kubeapi"
	"github.com/clusterctl/clusterctl/pki"
)

// Server holds objects by path (/apis/apps/v1/namespaces/ns/deployments/x).
type Server struct {
	mu      sync.Mutex
	objects map[string]map[string]any
	// Requests are "METHOD path?query content-type", in order.
	Requests []string
}

// Start serves an empty store and returns a client for it.
func Start(t testing.TB) (*Server, *kubeapi.Client) {
	t.Helper()
	s := &Server{objects: map[string]map[string]any{}}
	srv := httptest.NewUnstartedServer(s)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cert, key := clientCert(t)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	path := filepath.Join(t.TempDir(), "admin.conf")
	kc := pki.Kubeconfig(pki.KubeconfigData{ClusterName: "t", Server: srv.URL, CACert: ca, UserName: "admin", ClientCert: cert, ClientKey: key})
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := kubeapi.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return s, c
}

// Put stores an object at path, as another writer would.
func (s *Server) Put(path string, o map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[path] = o
}

// Paths lists the stored objects' paths, sorted.
func (s *Server) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p := range s.objects {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Object returns the object stored at path.
func (s *Server) Object(path string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[path]
	return o, ok
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Requests = append(s.Requests, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Content-Type"))
	p := r.URL.Path
	switch r.Method {
	case http.MethodPatch:
		if r.Header.Get("Content-Type") != "application/apply-patch+yaml" {
			http.Error(w, `{"message":"only server-side apply"}`, http.StatusUnsupportedMediaType)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var o map[string]any
		if err := json.Unmarshal(b, &o); err != nil {
			http.Error(w, `{"message":"bad body"}`, http.StatusBadRequest)
			return
		}
		s.objects[p] = o
		json.NewEncoder(w).Encode(o)
	case http.MethodGet:
		if o, ok := s.objects[p]; ok {
			json.NewEncoder(w).Encode(o)
			return
		}
		// A collection: the objects directly below p (any namespace when p
		// has none) matching the selector.
		key, value, _ := strings.Cut(r.URL.Query().Get("labelSelector"), "=")
		kind := p[strings.LastIndex(p, "/")+1:]
		prefix := p[:strings.LastIndex(p, "/")]
		var items []any
		for op, o := range s.objects {
			rel, ok := strings.CutPrefix(op, prefix+"/")
			parts := strings.Split(rel, "/")
			if !ok || !(len(parts) == 2 && parts[0] == kind || len(parts) == 4 && parts[0] == "namespaces" && parts[2] == kind) {
				continue
			}
			md, _ := o["metadata"].(map[string]any)
			labels, _ := md["labels"].(map[string]any)
			if key == "" || labels[key] == value {
				items = append(items, o)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	case http.MethodDelete:
		if _, ok := s.objects[p]; !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"message":"not found"}`)
			return
		}
		delete(s.objects, p)
		io.WriteString(w, `{"kind":"Status","status":"Success"}`)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func clientCert(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "admin"},
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

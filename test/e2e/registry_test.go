package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/clusterctl/clusterctl/lab"
)

// registryCluster pulls images of a registry that does not exist
// (images.example.invalid never resolves) through a mirror the test serves
// on the lab bridge: TLS with its own CA, basic authentication.
const registryCluster = `cluster "e2e-registry" {
  kubernetes_version = "1.37.2"
}

addon "metrics-server" {
  enabled = false
}

registry "images.example.invalid" {
  mirrors      = ["https://%s"]
  ca_file      = "registry-ca.pem"
  username_env = "E2E_REGISTRY_USER"
  password_env = "E2E_REGISTRY_PASSWORD"
}
`

const mirroredWorkload = `apiVersion: v1
kind: Pod
metadata:
  name: mirrored
spec:
  containers:
  - name: echo
    image: images.example.invalid/e2e/mirrored:v1
    imagePullPolicy: Always
`

// TestRegistryMirror: containerd pulls through a mirror from the spec with
// its CA and credentials; the password is never printed.
func TestRegistryMirror(t *testing.T) {
	const user, password = "e2e", "pw-7d1f0c9a-never-printed"
	t.Setenv("E2E_REGISTRY_USER", user)
	t.Setenv("E2E_REGISTRY_PASSWORD", password)
	l := newLab(t, "10.237.0.0/24", 1, 1, "")
	lb, err := lab.Open(l.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	bridge := lb.BridgeAddress()

	caPEM, cert := registryCerts(t, bridge.AsSlice())
	if err := os.WriteFile(filepath.Join(l.Dir, "registry-ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(bridge.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	var pulls, refused atomic.Int64
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				refused.Add(1)
				w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
				pulls.Add(1)
			}
			reg.ServeHTTP(w, r)
		}),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()

	// The echo image, pushed to the mirror under the path pods name.
	img := echoImage(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	push(t, client, "https://"+addr, "e2e/mirrored", "v1", user, password, img)
	pulls.Store(0)

	if err := os.WriteFile(filepath.Join(l.Dir, "cluster.hcl"), []byte(fmt.Sprintf(registryCluster, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	plan := l.mustSpec("plan")
	out := l.mustSpec("apply", "-auto-approve")
	if strings.Contains(plan+out, password) {
		t.Fatalf("the registry password was printed:\n%s\n%s", plan, out)
	}
	if !strings.Contains(plan, "hosts.toml:sha256") || !strings.Contains(plan, "(sensitive)") {
		t.Errorf("the plan does not show the hosts.toml as a sensitive file:\n%s", plan)
	}
	worker := l.hostAddrs(t)["worker-1"]
	if mode := strings.TrimSpace(l.mustSSH(worker, "stat -c %a /etc/clusterctl/registries/*/images.example.invalid/hosts.toml")); mode != "600" {
		t.Errorf("hosts.toml with credentials has mode %s, want 600", mode)
	}

	l.kubeconfig()
	pod := filepath.Join(l.Dir, "mirrored.yaml")
	if err := os.WriteFile(pod, []byte(mirroredWorkload), 0o644); err != nil {
		t.Fatal(err)
	}
	l.mustKubectl("apply", "-f", pod)
	eventually(t, 90*time.Second, "the pod of the mirrored image running", func() error {
		phase, err := l.kubectl("get", "pod", "mirrored", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.waiting.message}")
		if err != nil || !strings.HasPrefix(phase, "Running") {
			return fmt.Errorf("pod mirrored: %q %v", phase, err)
		}
		return nil
	})
	if pulls.Load() == 0 {
		t.Errorf("the mirror served no manifest (%d unauthenticated requests refused)", refused.Load())
	}
	if out, err := l.spec("plan", "-detailed-exitcode"); exitCode(err) != 0 {
		t.Errorf("plan after apply: exit %d\n%s", exitCode(err), out)
	}
}

// registryCerts makes a CA and a serving certificate for ip.
func registryCerts(t *testing.T, ip net.IP) (caPEM []byte, serving tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e registry CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "e2e registry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{ip}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}

// push uploads an image with the registry API's monolithic blob uploads,
// then its manifest under tag.
func push(t *testing.T, c *http.Client, base, repo, tag, user, password string, img v1.Image) {
	t.Helper()
	do := func(method, url, ctype string, body []byte) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(user, password)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %s", method, url, resp.Status)
		}
		return resp
	}
	blob := func(data []byte) {
		loc := do(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil).Header.Get("Location")
		if !strings.HasPrefix(loc, "http") {
			loc = base + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		sum := sha256.Sum256(data)
		do(http.MethodPut, loc+sep+"digest=sha256:"+hex.EncodeToString(sum[:]), "application/octet-stream", data)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		blob(data)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	blob(cfg)
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	do(http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, string(mt), manifest)
}

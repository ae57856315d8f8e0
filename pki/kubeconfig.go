package pki

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// KubeconfigData is everything one kubeconfig file holds.
type KubeconfigData struct {
	ClusterName string
	Server      string
	CACert      []byte // PEM of the CA that verifies the API server
	UserName    string
	ClientCert  []byte // PEM
	ClientKey   []byte // PEM
}

// Kubeconfig renders a kubeconfig with one cluster, one user and one
// context, certificates and key embedded. The result holds a private key:
// write it 0600 and never print it.
func Kubeconfig(d KubeconfigData) []byte {
	ctx := d.UserName + "@" + d.ClusterName
	b64 := base64.StdEncoding.EncodeToString
	var b strings.Builder
	line := func(indent int, key, value string) {
		fmt.Fprintf(&b, "%s%s: %s\n", strings.Repeat(" ", indent), key, value)
	}
	line(0, "apiVersion", "v1")
	line(0, "kind", "Config")
	b.WriteString("clusters:\n- cluster:\n")
	line(4, "certificate-authority-data", b64(d.CACert))
	line(4, "server", quote(d.Server))
	line(2, "name", quote(d.ClusterName))
	b.WriteString("contexts:\n- context:\n")
	line(4, "cluster", quote(d.ClusterName))
	line(4, "user", quote(d.UserName))
	line(2, "name", quote(ctx))
	line(0, "current-context", quote(ctx))
	line(0, "preferences", "{}")
	b.WriteString("users:\n")
	line(0, "- name", quote(d.UserName))
	b.WriteString("  user:\n")
	line(4, "client-certificate-data", b64(d.ClientCert))
	line(4, "client-key-data", b64(d.ClientKey))
	return []byte(b.String())
}

// quote writes s as a double-quoted scalar. JSON string syntax is valid
// YAML, and quoting keeps names such as "system:node:n1" plain strings.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// RenderKubeconfig renders the table's kubeconfig called name from the
// certificates in r. It refuses a client certificate that does not match
// its key, so a broken kubeconfig is never produced; run Ensure first.
func RenderKubeconfig(r Reader, t Table, name string) ([]byte, error) {
	k, ok := t.Kubeconfig(name)
	if !ok {
		return nil, fmt.Errorf("pki: no kubeconfig %q in the table", name)
	}
	ca, ok := t.Entry(k.CA)
	if !ok {
		return nil, fmt.Errorf("pki: kubeconfig %s: no CA entry %q", name, k.CA)
	}
	leaf, ok := t.Entry(k.Cert)
	if !ok {
		return nil, fmt.Errorf("pki: kubeconfig %s: no certificate entry %q", name, k.Cert)
	}
	caPEM, err := r.Read(ca.CertFile())
	if err != nil {
		return nil, fmt.Errorf("pki: kubeconfig %s: %w", name, err)
	}
	if _, err := parseCert(ca.CertFile(), caPEM); err != nil {
		return nil, fmt.Errorf("pki: kubeconfig %s: %w", name, err)
	}
	certPEM, err := r.Read(leaf.CertFile())
	if err != nil {
		return nil, fmt.Errorf("pki: kubeconfig %s: %w", name, err)
	}
	keyPEM, err := r.Read(leaf.KeyFile())
	if err != nil {
		return nil, fmt.Errorf("pki: kubeconfig %s: %w", name, err)
	}
	cert, err := parseCert(leaf.CertFile(), certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: kubeconfig %s: %w", name, err)
	}
	key, err := parseKey(leaf.KeyFile(), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: kubeconfig %s: %w", name, err)
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("pki: kubeconfig %s: %s does not match %s", name, leaf.CertFile(), leaf.KeyFile())
	}
	return Kubeconfig(KubeconfigData{
		ClusterName: k.ClusterName,
		Server:      k.Server,
		CACert:      caPEM,
		UserName:    k.UserName,
		ClientCert:  certPEM,
		ClientKey:   keyPEM,
	}), nil
}

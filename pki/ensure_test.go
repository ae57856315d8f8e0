package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// countingStore records every write on top of a real store.
type countingStore struct {
	Store
	writes []string
}

func (c *countingStore) Write(p string, data []byte, mode fs.FileMode) error {
	c.writes = append(c.writes, p)
	return c.Store.Write(p, data, mode)
}

func mustEnsure(t *testing.T, s Store, tab Table, o Options) Report {
	t.Helper()
	rep, err := Ensure(s, tab, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// actions maps entry ID → action for the entries that are not kept.
func actions(r Report) map[string]Action {
	out := map[string]Action{}
	for _, x := range r.Changes() {
		out[x.ID] = x.Action
	}
	return out
}

func readCert(t *testing.T, s Reader, rel string) *x509.Certificate {
	t.Helper()
	b, err := s.Read(rel)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCert(rel, b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readFile(t *testing.T, s Reader, rel string) []byte {
	t.Helper()
	b, err := s.Read(rel)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verifyAll checks every leaf against its CA the way TLS peers will: chain,
// extended key usage, and (for serving certificates) every SAN.
func verifyAll(t *testing.T, s Reader, tab Table, now time.Time) {
	t.Helper()
	for _, e := range tab.Certs {
		if e.Kind != KindLeaf {
			continue
		}
		ca, _ := tab.Entry(e.CA)
		roots := x509.NewCertPool()
		roots.AddCert(readCert(t, s, ca.CertFile()))
		c := readCert(t, s, e.CertFile())
		for _, u := range e.Usage.ExtKeyUsage() {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("%s: verify for %v: %v", e.ID, u, err)
			}
		}
		if e.Usage&UsageServer != 0 {
			for _, name := range append(slices.Clone(e.DNSNames), addrStrings(e.IPs)...) {
				if err := c.VerifyHostname(name); err != nil {
					t.Errorf("%s: %v", e.ID, err)
				}
			}
		}
		if e.Usage == UsageClient {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
				t.Errorf("%s: a client certificate verifies for server auth", e.ID)
			}
		}
		if c.Subject.CommonName != e.CommonName || !slices.Equal(c.Subject.Organization, e.Organization) {
			t.Errorf("%s: subject %v, want CN=%s O=%v", e.ID, c.Subject, e.CommonName, e.Organization)
		}
		if len(c.SubjectKeyId) == 0 || !bytes.Equal(c.AuthorityKeyId, readCert(t, s, ca.CertFile()).SubjectKeyId) {
			t.Errorf("%s: SKID %x AKID %x", e.ID, c.SubjectKeyId, c.AuthorityKeyId)
		}
		if c.SerialNumber.BitLen() < 64 {
			t.Errorf("%s: serial %v is not random 128-bit", e.ID, c.SerialNumber)
		}
	}
}

func TestEnsureCreatesThenKeeps(t *testing.T) {
	dir := t.TempDir()
	tab := mustTable(t, haCluster())
	cs := &countingStore{Store: DirStore{Root: dir}}

	rep := mustEnsure(t, cs, tab, Options{Now: t0})
	if len(rep.Results) != len(tab.Certs) {
		t.Fatalf("%d results for %d entries", len(rep.Results), len(tab.Certs))
	}
	for _, x := range rep.Results {
		if x.Action != ActionCreate || x.Warning != "" {
			t.Errorf("%s: %s %q %q, want a quiet create", x.ID, x.Action, x.Reason, x.Warning)
		}
		want := t0.Add(DefaultLeafValidity)
		switch x.Kind {
		case KindCA:
			want = t0.Add(DefaultCAValidity)
		case KindKeyPair:
			want = time.Time{}
		}
		if !x.NotAfter.Equal(want) {
			t.Errorf("%s: NotAfter %v, want %v", x.ID, x.NotAfter, want)
		}
	}
	if len(cs.writes) != 2*len(tab.Certs) {
		t.Errorf("%d writes, want %d", len(cs.writes), 2*len(tab.Certs))
	}

	// Files and modes: keys 0600, certificates 0644, folders 0700, no
	// temporary files left behind.
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		mode := info.Mode().Perm()
		switch {
		case d.IsDir():
			if rel != "." && mode != 0o700 {
				t.Errorf("%s: mode %o, want 700", rel, mode)
			}
			return nil
		case strings.HasSuffix(rel, ".key"):
			if mode != 0o600 {
				t.Errorf("%s: mode %o, want 600", rel, mode)
			}
		case strings.HasSuffix(rel, ".crt") || strings.HasSuffix(rel, ".pub"):
			if mode != 0o644 {
				t.Errorf("%s: mode %o, want 644", rel, mode)
			}
		default:
			t.Errorf("unexpected file %s", rel)
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range tab.Certs {
		want = append(want, e.CertFile(), e.KeyFile())
	}
	slices.Sort(want)
	if d := cmp.Diff(want, files); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}

	verifyAll(t, cs, tab, t0)

	// Idempotent: a second run, even a month later, writes nothing.
	cs.writes = nil
	rep = mustEnsure(t, cs, tab, Options{Now: t0.Add(30 * day)})
	if rep.Changed() || len(cs.writes) != 0 {
		t.Errorf("second Ensure changed %v, wrote %v", actions(rep), cs.writes)
	}
	if r, _ := rep.Result(IDAPIServer); !r.NotAfter.Equal(t0.Add(DefaultLeafValidity)) {
		t.Errorf("kept apiserver NotAfter %v", r.NotAfter)
	}
}

func TestCheckWritesNothingAndAgreesWithEnsure(t *testing.T) {
	dir := t.TempDir()
	tab := mustTable(t, oneHost())
	cs := &countingStore{Store: DirStore{Root: dir}}
	plan, err := Check(cs, tab, Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.writes) != 0 {
		t.Errorf("Check wrote %v", cs.writes)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Check left files: %v", ents)
	}
	got := mustEnsure(t, cs, tab, Options{Now: t0})
	if d := cmp.Diff(plan, got); d != "" {
		t.Errorf("Check and Ensure disagree (-check +ensure):\n%s", d)
	}
}

func TestSANChangeReissuesOnlyAffected(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	c := haCluster()
	mustEnsure(t, s, mustTable(t, c), Options{Now: t0})
	oldKey := readFile(t, s, "apiserver.key")

	// A fourth control plane that is neither an etcd member nor a node: only
	// the shared apiserver certificate names it.
	c.ControlPlanes = append(slices.Clone(c.ControlPlanes), Node{Name: "cp4", Addresses: addrs("10.0.0.14")})
	tab := mustTable(t, c)
	plan, err := Check(s, tab, Options{Now: t0.Add(day)})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]Action{IDAPIServer: ActionReissue}, actions(plan)); d != "" {
		t.Fatalf("changes (-want +got):\n%s", d)
	}
	if r, _ := plan.Result(IDAPIServer); r.Reason != "SANs changed: +cp4 +10.0.0.14" {
		t.Errorf("reason %q", r.Reason)
	}

	cs := &countingStore{Store: s}
	rep := mustEnsure(t, cs, tab, Options{Now: t0.Add(day)})
	if d := cmp.Diff(plan, rep); d != "" {
		t.Errorf("Check and Ensure disagree (-check +ensure):\n%s", d)
	}
	if d := cmp.Diff([]string{"apiserver.key", "apiserver.crt"}, cs.writes); d != "" {
		t.Errorf("writes (-want +got):\n%s", d)
	}
	if bytes.Equal(oldKey, readFile(t, s, "apiserver.key")) {
		t.Error("reissued apiserver certificate kept its old key")
	}
	verifyAll(t, s, tab, t0.Add(day))

	// Removing a host removes its name again.
	c.ControlPlanes = c.ControlPlanes[:3]
	rep = mustEnsure(t, s, mustTable(t, c), Options{Now: t0.Add(2 * day)})
	if r, _ := rep.Result(IDAPIServer); r.Action != ActionReissue || r.Reason != "SANs changed: -cp4 -10.0.0.14" {
		t.Errorf("after removing cp4: %s %q", r.Action, r.Reason)
	}
}

func TestExpiringLeavesAreRenewed(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})

	// 25 days before the leaves expire: within the default 30, outside 20.
	later := t0.Add(DefaultLeafValidity - 25*day)
	if rep := mustEnsure(t, &countingStore{Store: s}, tab, Options{Now: later, RenewBefore: 20 * day}); rep.Changed() {
		t.Fatalf("renew-before 20 days changed %v", actions(rep))
	}
	oldCA := readFile(t, s, "ca.crt")
	rep := mustEnsure(t, s, tab, Options{Now: later})
	for _, x := range rep.Results {
		switch x.Kind {
		case KindLeaf:
			if x.Action != ActionRenew || x.Reason != "expires in 25 days" {
				t.Errorf("%s: %s %q, want renew", x.ID, x.Action, x.Reason)
			}
			if !x.NotAfter.Equal(later.Add(DefaultLeafValidity)) {
				t.Errorf("%s: NotAfter %v", x.ID, x.NotAfter)
			}
		default:
			if x.Action != ActionKeep {
				t.Errorf("%s: %s, want keep", x.ID, x.Action)
			}
		}
	}
	if !bytes.Equal(oldCA, readFile(t, s, "ca.crt")) {
		t.Error("CA changed")
	}
	verifyAll(t, s, tab, later)

	// Long expired is a renewal too, with an honest reason.
	rep = mustEnsure(t, s, tab, Options{Now: later.Add(DefaultLeafValidity + 3*day)})
	if r, _ := rep.Result(IDAdmin); r.Action != ActionRenew || r.Reason != "expired 3 days ago" {
		t.Errorf("admin: %s %q", r.Action, r.Reason)
	}
}

func TestCARenewalKeepsKeyAndLeaves(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})
	key := readFile(t, s, "etcd/ca.key")
	old := readCert(t, s, "etcd/ca.crt")

	// Replace the etcd CA certificate with one from the same key that ends
	// in ten days, as an old CA would.
	k, err := parseKey("etcd/ca.key", key)
	if err != nil {
		t.Fatal(err)
	}
	_, der, err := selfSign(k, "etcd-ca", old.RawSubject, t0, 10*day)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write("etcd/ca.crt", encodeCert(der), ModeCert); err != nil {
		t.Fatal(err)
	}

	cs := &countingStore{Store: s}
	rep := mustEnsure(t, cs, tab, Options{Now: t0.Add(day)})
	if d := cmp.Diff(map[string]Action{IDEtcdCA: ActionRenew}, actions(rep)); d != "" {
		t.Fatalf("changes (-want +got):\n%s", d)
	}
	r, _ := rep.Result(IDEtcdCA)
	if r.Reason != "expires in 9 days; re-signed with the existing key" || r.Warning != "" {
		t.Errorf("reason %q warning %q", r.Reason, r.Warning)
	}
	if d := cmp.Diff([]string{"etcd/ca.crt"}, cs.writes); d != "" {
		t.Errorf("writes (-want +got):\n%s", d)
	}
	if !bytes.Equal(key, readFile(t, s, "etcd/ca.key")) {
		t.Error("CA key changed on renewal")
	}
	// The etcd leaves issued under the old certificate verify against the
	// renewed one.
	verifyAll(t, s, tab, t0.Add(day))
}

func TestCACertMissingIsRemadeFromKey(t *testing.T) {
	dir := t.TempDir()
	s := DirStore{Root: dir}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})
	if err := os.Remove(filepath.Join(dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	rep := mustEnsure(t, s, tab, Options{Now: t0.Add(day)})
	if d := cmp.Diff(map[string]Action{IDClusterCA: ActionReissue}, actions(rep)); d != "" {
		t.Fatalf("changes (-want +got):\n%s", d)
	}
	if r, _ := rep.Result(IDClusterCA); r.Reason != "ca.crt missing; re-signed with the existing key" || r.Warning != "" {
		t.Errorf("%q %q", r.Reason, r.Warning)
	}
	verifyAll(t, s, tab, t0.Add(day))
}

func TestForeignSignedLeafIsReissued(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})

	// A look-alike CA (same name, other key) signs an otherwise perfect
	// apiserver certificate.
	otherKey, _ := newKey()
	otherCA, _, err := selfSign(otherKey, "kubernetes", nil, t0, DefaultCAValidity)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := tab.Entry(IDAPIServer)
	leafKey, _ := newKey()
	_, der, err := signLeaf(e, leafKey.Public(), issuer{cert: otherCA, key: otherKey}, t0, DefaultLeafValidity)
	if err != nil {
		t.Fatal(err)
	}
	if err := writePair(s, e, leafKey, encodeCert(der)); err != nil {
		t.Fatal(err)
	}

	rep := mustEnsure(t, s, tab, Options{Now: t0})
	if d := cmp.Diff(map[string]Action{IDAPIServer: ActionReissue}, actions(rep)); d != "" {
		t.Fatalf("changes (-want +got):\n%s", d)
	}
	if r, _ := rep.Result(IDAPIServer); r.Reason != "not signed by the current ca" {
		t.Errorf("reason %q", r.Reason)
	}
	verifyAll(t, s, tab, t0)
}

func TestWrongSubjectOrUsageIsReissued(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})

	// Swap the table's view: kube-proxy now wants another name, and the
	// scheduler certificate is asked to be server+client.
	for i := range tab.Certs {
		switch tab.Certs[i].ID {
		case IDKubeProxy:
			tab.Certs[i].CommonName = "system:kube-proxy-2"
		case IDScheduler:
			tab.Certs[i].Usage = UsageServerClient
		case IDAdmin:
			tab.Certs[i].Organization = []string{"ops"}
		}
	}
	rep, err := Check(s, tab, Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, x := range rep.Changes() {
		reasons[x.ID] = x.Reason
	}
	want := map[string]string{
		IDKubeProxy: `common name "system:kube-proxy", want "system:kube-proxy-2"`,
		IDScheduler: "usages client, want server+client",
		IDAdmin:     `organization ["system:masters"], want ["ops"]`,
	}
	if d := cmp.Diff(want, reasons); d != "" {
		t.Errorf("reasons (-want +got):\n%s", d)
	}
}

func TestCorruptFilesAreNamed(t *testing.T) {
	tab := mustTable(t, oneHost())
	for _, tc := range []struct {
		file, content string
		id            string
		action        Action
		reason        string
	}{
		{"apiserver.crt", "garbage", IDAPIServer, ActionReissue, "apiserver.crt: no PEM data"},
		{"apiserver.crt", "", IDAPIServer, ActionReissue, "apiserver.crt: empty file"},
		{"kubelet/n1-serving.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "kubelet/n1-serving", ActionReissue, `kubelet/n1-serving.key: malformed PRIVATE KEY block`},
		{"etcd/peer-n1.crt", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "etcd/peer-n1", ActionReissue, `etcd/peer-n1.crt: PEM block "PUBLIC KEY", want "CERTIFICATE"`},
		{"etcd/ca.crt", "garbage", IDEtcdCA, ActionReissue, "etcd/ca.crt: no PEM data; re-signed with the existing key"},
		{"sa.pub", "garbage", IDServiceAccount, ActionReissue, "sa.pub: no PEM data; rewritten from sa.key"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s := DirStore{Root: t.TempDir()}
			mustEnsure(t, s, tab, Options{Now: t0})
			if err := s.Write(tc.file, []byte(tc.content), ModeKey); err != nil {
				t.Fatal(err)
			}
			rep := mustEnsure(t, s, tab, Options{Now: t0})
			if d := cmp.Diff(map[string]Action{tc.id: tc.action}, actions(rep)); d != "" {
				t.Fatalf("changes (-want +got):\n%s", d)
			}
			if r, _ := rep.Result(tc.id); !strings.HasPrefix(r.Reason, tc.reason) {
				t.Errorf("reason %q, want prefix %q", r.Reason, tc.reason)
			}
			verifyAll(t, s, tab, t0)
			if rep := mustEnsure(t, s, tab, Options{Now: t0}); rep.Changed() {
				t.Errorf("not repaired: %v", actions(rep))
			}
		})
	}
}

func TestLostCAKeyReplacesCALoudly(t *testing.T) {
	dir := t.TempDir()
	s := DirStore{Root: dir}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})
	if err := s.Write("ca.key", []byte("garbage"), ModeKey); err != nil {
		t.Fatal(err)
	}
	rep := mustEnsure(t, s, tab, Options{Now: t0})
	want := map[string]Action{IDClusterCA: ActionReissue}
	for _, e := range tab.Certs {
		if e.CA == IDClusterCA {
			want[e.ID] = ActionReissue
		}
	}
	if d := cmp.Diff(want, actions(rep)); d != "" {
		t.Fatalf("changes (-want +got):\n%s", d)
	}
	if r, _ := rep.Result(IDAdmin); r.Reason != "signed by the replaced ca" {
		t.Errorf("admin reason %q", r.Reason)
	}
	warn := rep.Warnings()
	if len(warn) != 1 || !strings.Contains(warn[0], "CA ca is replaced by a NEW CA (ca.key: no PEM data)") {
		t.Errorf("warnings %q", warn)
	}
	if !strings.Contains(rep.String(), "WARNING: CA ca is replaced") {
		t.Errorf("report does not shout:\n%s", rep)
	}
	verifyAll(t, s, tab, t0)
}

func TestServiceAccountKeyPair(t *testing.T) {
	dir := t.TempDir()
	s := DirStore{Root: dir}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})
	key := readFile(t, s, "sa.key")
	k, err := parseKey("sa.key", key)
	if err != nil {
		t.Fatal(err)
	}
	if ek, ok := k.(*ecdsa.PrivateKey); !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("sa.key is %T, want ECDSA P-256 (ES256)", k)
	}
	pub, err := parsePublic("sa.pub", readFile(t, s, "sa.pub"))
	if err != nil || !samePublicKey(pub, k.Public()) {
		t.Fatalf("sa.pub does not match sa.key: %v", err)
	}

	// A lost public key is rewritten from the private key, quietly.
	os.Remove(filepath.Join(dir, "sa.pub"))
	rep := mustEnsure(t, s, tab, Options{Now: t0})
	if r, _ := rep.Result(IDServiceAccount); r.Action != ActionReissue || r.Warning != "" || r.Reason != "sa.pub missing; rewritten from sa.key" {
		t.Errorf("%+v", r)
	}
	if !bytes.Equal(key, readFile(t, s, "sa.key")) {
		t.Error("sa.key changed")
	}

	// A lost private key means new tokens for everyone: say so.
	os.Remove(filepath.Join(dir, "sa.key"))
	rep = mustEnsure(t, s, tab, Options{Now: t0})
	r, _ := rep.Result(IDServiceAccount)
	if r.Action != ActionReissue || !strings.Contains(r.Warning, "every service-account token signed with the old key stops working") {
		t.Errorf("%+v", r)
	}
	if bytes.Equal(key, readFile(t, s, "sa.key")) {
		t.Error("sa.key not replaced")
	}

	// An Ed25519 key parses but kube-apiserver cannot sign tokens with it.
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edPEM, err := encodeKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write("sa.key", edPEM, ModeKey); err != nil {
		t.Fatal(err)
	}
	rep = mustEnsure(t, s, tab, Options{Now: t0})
	if r, _ := rep.Result(IDServiceAccount); r.Action != ActionReissue || r.Reason != "sa.key: ed25519.PrivateKey cannot sign service-account tokens" || r.Warning == "" {
		t.Errorf("%+v", r)
	}
}

// A kubeadm-made PKI (RSA keys in PKCS#1) is adopted as is, and new leaves
// are signed by its CA.
func TestAdoptsRSACA(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: t0.Add(-day), NotAfter: t0.Add(3650 * day),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rsaKey.PublicKey, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	if err := s.Write("ca.key", keyPEM, ModeKey); err != nil {
		t.Fatal(err)
	}
	if err := s.Write("ca.crt", encodeCert(der), ModeCert); err != nil {
		t.Fatal(err)
	}
	tab := mustTable(t, oneHost())
	rep := mustEnsure(t, s, tab, Options{Now: t0})
	if r, _ := rep.Result(IDClusterCA); r.Action != ActionKeep {
		t.Errorf("RSA CA: %s %q", r.Action, r.Reason)
	}
	verifyAll(t, s, tab, t0)
	if rep := mustEnsure(t, s, tab, Options{Now: t0}); rep.Changed() {
		t.Errorf("second run: %v", actions(rep))
	}
}

// failingStore fails the n-th write, like a full disk or a cut run.
type failingStore struct {
	Store
	n int
}

func (f *failingStore) Write(p string, data []byte, mode fs.FileMode) error {
	f.n--
	if f.n == 0 {
		return errors.New("disk full")
	}
	return f.Store.Write(p, data, mode)
}

// A run cut at any write converges on the next run.
func TestInterruptedRunConverges(t *testing.T) {
	tab := mustTable(t, oneHost())
	for _, cut := range []int{1, 2, 3, 8, 9, 20} {
		s := DirStore{Root: t.TempDir()}
		_, err := Ensure(&failingStore{Store: s, n: cut}, tab, Options{Now: t0})
		if err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("cut %d: err %v", cut, err)
		}
		mustEnsure(t, s, tab, Options{Now: t0})
		verifyAll(t, s, tab, t0)
		if rep := mustEnsure(t, s, tab, Options{Now: t0}); rep.Changed() {
			t.Errorf("cut %d: third run changed %v", cut, actions(rep))
		}
	}
}

func TestFailedCASkipsItsLeaves(t *testing.T) {
	tab := mustTable(t, oneHost())
	s := DirStore{Root: t.TempDir()}
	rep, err := Ensure(&failingStore{Store: s, n: 1}, tab, Options{Now: t0})
	if err == nil || !strings.Contains(err.Error(), "pki apiserver: skipped: CA ca failed") {
		t.Errorf("err %v", err)
	}
	if _, ok := rep.Result(IDAPIServer); ok {
		t.Error("apiserver handled without its CA")
	}
	if r, ok := rep.Result(IDEtcdCA); !ok || r.Action != ActionCreate {
		t.Errorf("etcd CA not handled after the cluster CA failed: %+v", r)
	}
}

func TestOptionsRejectRenewLoops(t *testing.T) {
	tab := mustTable(t, oneHost())
	_, err := Check(DirStore{Root: t.TempDir()}, tab, Options{Now: t0, LeafValidity: 20 * day})
	if err == nil || !strings.Contains(err.Error(), "would be renewed on every run") {
		t.Errorf("err %v", err)
	}
}

func TestReportStringHasNoSecrets(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	rep := mustEnsure(t, s, tab, Options{Now: t0})
	out := rep.String()
	if !strings.Contains(out, "create   apiserver                  expires 2027-03-01 (in 365 days)\n") {
		t.Errorf("report:\n%s", out)
	}
	if !strings.Contains(out, "create   sa                         no expiry\n") {
		t.Errorf("report:\n%s", out)
	}
	for _, e := range tab.Certs {
		key := readFile(t, s, e.KeyFile())
		b, _ := pem.Decode(key)
		if strings.Contains(out, "PRIVATE") || bytes.Contains([]byte(out), key[30:60]) || b == nil {
			t.Fatalf("report leaks key material of %s", e.ID)
		}
	}
}

// The certificates work for real TLS: the API server's serving certificate
// with the admin client certificate, and etcd peers with each other.
func TestTLSHandshakes(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, haCluster())
	mustEnsure(t, s, tab, Options{Now: time.Now()})

	pair := func(id string) tls.Certificate {
		e, _ := tab.Entry(id)
		c, err := tls.X509KeyPair(readFile(t, s, e.CertFile()), readFile(t, s, e.KeyFile()))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pool := func(id string) *x509.CertPool {
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(readFile(t, s, id+".crt"))
		return p
	}
	for _, tc := range []struct {
		server, client, ca, serverName string
	}{
		{IDAPIServer, IDAdmin, IDClusterCA, "127.0.0.1"},
		{IDAPIServer, IDKubeletClient("w1"), IDClusterCA, "kubernetes.default.svc.corp.local"},
		{IDKubeletServing("w1"), IDAPIServerKubelet, IDClusterCA, "10.0.0.21"},
		{IDEtcdPeer("cp1"), IDEtcdPeer("cp2"), IDEtcdCA, "10.0.0.11"},
		{IDEtcdServer("cp2"), IDAPIServerEtcd, IDEtcdCA, "127.0.0.1"},
		{IDEtcdServer("cp2"), IDEtcdServer("cp2"), IDEtcdCA, "cp2"},
	} {
		t.Run(tc.server+"<-"+tc.client, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				Certificates: []tls.Certificate{pair(tc.server)},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    pool(tc.ca),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					done <- err
					return
				}
				defer c.Close()
				_, err = io.Copy(io.Discard, c)
				done <- err
			}()
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
				Certificates: []tls.Certificate{pair(tc.client)},
				RootCAs:      pool(tc.ca),
				ServerName:   tc.serverName,
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			if err := <-done; err != nil {
				t.Errorf("server side: %v", err)
			}
		})
	}

	// A worker's kubelet serving certificate does not serve as the API.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair(IDKubeletServing("w1"))}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	var dialer net.Dialer
	_, err = tls.DialWithDialer(&dialer, "tcp", ln.Addr().String(), &tls.Config{RootCAs: pool(IDClusterCA), ServerName: "kubernetes"})
	if err == nil {
		t.Error("kubelet serving certificate accepted for the name kubernetes")
	}
}

// A CA key that no longer matches its certificate (a replacement cut
// between the two writes, or a hand edit) wins: the certificate is re-made
// from the key, loudly, and everything the old one signed is reissued.
func TestCAKeyCertMismatch(t *testing.T) {
	s := DirStore{Root: t.TempDir()}
	tab := mustTable(t, oneHost())
	mustEnsure(t, s, tab, Options{Now: t0})
	k, _ := newKey()
	kp, _ := encodeKey(k)
	if err := s.Write("etcd/ca.key", kp, ModeKey); err != nil {
		t.Fatal(err)
	}
	rep := mustEnsure(t, s, tab, Options{Now: t0})
	want := map[string]Action{IDEtcdCA: ActionReissue}
	for _, e := range tab.Certs {
		if e.CA == IDEtcdCA {
			want[e.ID] = ActionReissue
		}
	}
	if d := cmp.Diff(want, actions(rep)); d != "" {
		t.Fatalf("changes (-want +got):\n%s", d)
	}
	r, _ := rep.Result(IDEtcdCA)
	if r.Reason != "etcd/ca.crt does not match etcd/ca.key; re-signed with the existing key" ||
		!strings.Contains(r.Warning, "every host must receive the new etcd/ca.crt") {
		t.Errorf("%q %q", r.Reason, r.Warning)
	}
	if !samePublicKey(readCert(t, s, "etcd/ca.crt").PublicKey, k.Public()) {
		t.Error("CA certificate not re-made from the key")
	}
	verifyAll(t, s, tab, t0)
}

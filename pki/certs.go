package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Keys are ECDSA P-256: every Kubernetes component, etcd and kubectl accept
// them (kube-apiserver signs service-account tokens with ES256 from such a
// key), and generating one takes microseconds where RSA 2048 takes tens of
// milliseconds, which matters for plan, which builds every missing key to
// show exact results. Existing RSA keys (from kubeadm) are accepted as is.
func newKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// backdate puts NotBefore a little in the past so hosts whose clocks lag the
// workstation accept a certificate made a moment ago.
const backdate = time.Hour

const (
	pemCert       = "CERTIFICATE"
	pemPrivateKey = "PRIVATE KEY"
	pemPublicKey  = "PUBLIC KEY"
)

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: der})
}

func encodePublic(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// decodePEM returns the first PEM block of data. Errors name the file.
func decodePEM(name string, data []byte, types ...string) (*pem.Block, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		if len(data) == 0 {
			return nil, fmt.Errorf("%s: empty file", name)
		}
		return nil, fmt.Errorf("%s: no PEM data", name)
	}
	for _, t := range types {
		if b.Type == t {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s: PEM block %q, want %q", name, b.Type, types[0])
}

func parseCert(name string, data []byte) (*x509.Certificate, error) {
	b, err := decodePEM(name, data, pemCert)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// parseKey accepts PKCS#8, SEC 1 (EC) and PKCS#1 (RSA) private keys.
func parseKey(name string, data []byte) (crypto.Signer, error) {
	b, err := decodePEM(name, data, pemPrivateKey, "EC PRIVATE KEY", "RSA PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	var k any
	switch b.Type {
	case pemPrivateKey:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	}
	if err != nil {
		// The parsers' ASN.1 details help nobody fix the file.
		return nil, fmt.Errorf("%s: malformed %s block", name, b.Type)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported key type %T", name, k)
	}
	return s, nil
}

func parsePublic(name string, data []byte) (crypto.PublicKey, error) {
	b, err := decodePEM(name, data, pemPublicKey)
	if err != nil {
		return nil, err
	}
	p, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// samePublicKey reports whether a and b are the same key.
func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// saKeyUsable reports whether kube-apiserver can sign service-account
// tokens with k: RSA (RS256) or ECDSA on P-256/384/521 (ES256/384/512);
// not Ed25519.
func saKeyUsable(k crypto.Signer) bool {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return true
	case *ecdsa.PrivateKey:
		return k.Curve == elliptic.P256() || k.Curve == elliptic.P384() || k.Curve == elliptic.P521()
	}
	return false
}

// subjectKeyID is the truncated SHA-256 of the subjectPublicKey bits
// (RFC 7093, method 1).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil // never zero
}

// issuer is a CA able to sign: its current certificate and key.
type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// selfSign makes a CA certificate for key. rawSubject, when set, is reused
// byte for byte so that certificates issued under the previous CA
// certificate still chain to the new one.
func selfSign(key crypto.Signer, cn string, rawSubject []byte, now time.Time, validity time.Duration) (*x509.Certificate, []byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		RawSubject:            rawSubject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs leaves only
		SubjectKeyId:          skid,
		AuthorityKeyId:        skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, der, err
}

// signLeaf issues e's certificate for pub. It never outlives its CA: a
// certificate past its CA's expiry fails verification anyway, and plan
// should show the date that really matters.
func signLeaf(e Entry, pub crypto.PublicKey, iss issuer, now time.Time, validity time.Duration) (*x509.Certificate, []byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	skid, err := subjectKeyID(pub)
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(iss.cert.NotAfter) {
		notAfter = iss.cert.NotAfter
	}
	ku := x509.KeyUsageDigitalSignature
	if _, isRSA := pub.(*rsa.PublicKey); isRSA {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: e.CommonName, Organization: e.Organization},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           e.Usage.ExtKeyUsage(),
		BasicConstraintsValid: true,
		DNSNames:              e.DNSNames,
		SubjectKeyId:          skid,
		AuthorityKeyId:        iss.cert.SubjectKeyId,
	}
	for _, a := range e.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.Unmap().AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, iss.cert, pub, iss.key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, der, err
}

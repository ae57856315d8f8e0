package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Options tune Ensure and Check. Zero values mean the defaults.
type Options struct {
	Now          time.Time     // time.Now() when zero
	RenewBefore  time.Duration // renew what expires sooner than this; 30 days
	CAValidity   time.Duration // for new CA certificates; 10 years
	LeafValidity time.Duration // for new leaf certificates; 1 year
}

func (o Options) withDefaults() Options {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = DefaultRenewBefore
	}
	if o.CAValidity == 0 {
		o.CAValidity = DefaultCAValidity
	}
	if o.LeafValidity == 0 {
		o.LeafValidity = DefaultLeafValidity
	}
	return o
}

func (o Options) validity(e Entry) time.Duration {
	switch {
	case e.Validity > 0:
		return e.Validity
	case e.Kind == KindCA:
		return o.CAValidity
	}
	return o.LeafValidity
}

func (o Options) validate(t Table) error {
	if o.RenewBefore < 0 {
		return fmt.Errorf("renew-before %v is negative", o.RenewBefore)
	}
	for _, e := range t.Certs {
		if e.Kind != KindKeyPair && o.validity(e) <= o.RenewBefore {
			return fmt.Errorf("%s: validity %v is not longer than renew-before %v: it would be renewed on every run",
				e.ID, o.validity(e), o.RenewBefore)
		}
	}
	return nil
}

// Ensure makes the store match the table: it keeps what is valid, creates
// what is missing, renews what expires within RenewBefore and reissues what
// no longer matches (SANs, subject, usages, signing CA) or cannot be read.
// CAs come first, so their leaves are checked against the CA as it is after
// this run. Each file is written atomically, the key before the
// certificate. A second run with the same table writes nothing.
//
// The error joins the entries that failed (a store that cannot be read or
// written); entries signed by a failed CA are skipped. The report covers
// the entries that were handled.
func Ensure(s Store, t Table, o Options) (Report, error) {
	return run(s, t, o)
}

// Check reports what Ensure would do, writing nothing. It generates the
// keys and certificates Ensure would write (in memory), so its results
// — including the NotAfter of new certificates — are the ones apply gets.
func Check(r Reader, t Table, o Options) (Report, error) {
	return run(&overlay{base: r}, t, o)
}

func run(s Store, t Table, o Options) (Report, error) {
	o = o.withDefaults()
	if err := t.validate(); err != nil {
		return Report{}, fmt.Errorf("pki: %w", err)
	}
	if err := o.validate(t); err != nil {
		return Report{}, fmt.Errorf("pki: %w", err)
	}
	rep := Report{Now: o.Now}
	cas := map[string]*issuer{}
	replaced := map[string]bool{}
	var errs []error
	// validate guarantees every CA is listed before its leaves, and this
	// loop relies on it; key pairs have no dependencies.
	for _, e := range t.Certs {
		var (
			res Result
			err error
		)
		switch e.Kind {
		case KindCA:
			var iss *issuer
			res, iss, err = ensureCA(s, e, o)
			if err == nil {
				cas[e.ID] = iss
				replaced[e.ID] = res.Warning != ""
			}
		case KindKeyPair:
			res, err = ensureKeyPair(s, e)
		case KindLeaf:
			iss := cas[e.CA]
			if iss == nil {
				errs = append(errs, fmt.Errorf("pki %s: skipped: CA %s failed", e.ID, e.CA))
				continue
			}
			res, err = ensureLeaf(s, e, iss, replaced[e.CA], o)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("pki %s: %w", e.ID, err))
			continue
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, errors.Join(errs...)
}

// loaded is what a store holds for one entry: each file's presence, parsed
// value, and parse problem (which names the file).
type loaded struct {
	certOK, keyOK   bool
	cert            *x509.Certificate
	pub             crypto.PublicKey // key pairs: the public key file
	key             crypto.Signer
	certErr, keyErr error
}

func load(s Reader, e Entry) (loaded, error) {
	var l loaded
	certPEM, certOK, err := readOptional(s, e.CertFile())
	if err != nil {
		return l, err
	}
	keyPEM, keyOK, err := readOptional(s, e.KeyFile())
	if err != nil {
		return l, err
	}
	l.certOK, l.keyOK = certOK, keyOK
	if keyOK {
		l.key, l.keyErr = parseKey(e.KeyFile(), keyPEM)
	}
	if certOK {
		if e.Kind == KindKeyPair {
			l.pub, l.certErr = parsePublic(e.CertFile(), certPEM)
		} else {
			l.cert, l.certErr = parseCert(e.CertFile(), certPEM)
		}
	}
	return l, nil
}

func ensureCA(s Store, e Entry, o Options) (Result, *issuer, error) {
	l, err := load(s, e)
	if err != nil {
		return Result{}, nil, err
	}
	res := Result{ID: e.ID, Kind: e.Kind}
	if l.key == nil {
		// No usable key: only a new CA can sign again.
		switch {
		case !l.keyOK && !l.certOK:
			res.Action = ActionCreate
		case !l.keyOK:
			res.Action, res.Reason = ActionReissue, e.KeyFile()+" missing"
		default:
			res.Action, res.Reason = ActionReissue, l.keyErr.Error()
		}
		if res.Action == ActionReissue {
			res.Warning = fmt.Sprintf("CA %s is replaced by a NEW CA (%s): every certificate it signed is reissued and every host must receive the new %s",
				e.ID, res.Reason, e.CertFile())
		}
		key, err := newKey()
		if err != nil {
			return Result{}, nil, err
		}
		cert, der, err := selfSign(key, e.CommonName, nil, o.Now, o.validity(e))
		if err != nil {
			return Result{}, nil, err
		}
		if err := writePair(s, e, key, encodeCert(der)); err != nil {
			return Result{}, nil, err
		}
		res.NotAfter = cert.NotAfter
		return res, &issuer{cert: cert, key: key}, nil
	}

	// The key is good. Keep the CA, or re-sign its certificate with the
	// same key (and the same subject where there is one): certificates
	// issued under the old CA certificate keep verifying.
	var problem string
	var rawSubject []byte
	action := ActionReissue
	switch c := l.cert; {
	case !l.certOK:
		problem = e.CertFile() + " missing"
	case l.certErr != nil:
		problem = l.certErr.Error()
	case !c.BasicConstraintsValid || !c.IsCA || c.KeyUsage&x509.KeyUsageCertSign == 0:
		problem = e.CertFile() + " is not a CA certificate"
	case !samePublicKey(c.PublicKey, l.key.Public()):
		problem = e.CertFile() + " does not match " + e.KeyFile()
	case o.Now.Before(c.NotBefore):
		problem, rawSubject = "not valid before "+c.NotBefore.UTC().Format(time.RFC3339), c.RawSubject
	case c.NotAfter.Sub(o.Now) < o.RenewBefore:
		problem, rawSubject, action = expiry(c.NotAfter, o.Now), c.RawSubject, ActionRenew
	default:
		res.Action, res.NotAfter = ActionKeep, c.NotAfter
		return res, &issuer{cert: c, key: l.key}, nil
	}
	res.Action = action
	res.Reason = problem + "; re-signed with the existing key"
	if l.cert != nil && !samePublicKey(l.cert.PublicKey, l.key.Public()) {
		// The trust anchor the hosts have does not belong to this key.
		res.Warning = fmt.Sprintf("CA %s: %s: the CA certificate is re-made from the key, every certificate signed by the old one is reissued and every host must receive the new %s",
			e.ID, e.CertFile()+" does not match "+e.KeyFile(), e.CertFile())
	}
	cert, der, err := selfSign(l.key, e.CommonName, rawSubject, o.Now, o.validity(e))
	if err != nil {
		return Result{}, nil, err
	}
	if err := s.Write(e.CertFile(), encodeCert(der), ModeCert); err != nil {
		return Result{}, nil, err
	}
	res.NotAfter = cert.NotAfter
	return res, &issuer{cert: cert, key: l.key}, nil
}

func ensureKeyPair(s Store, e Entry) (Result, error) {
	l, err := load(s, e)
	if err != nil {
		return Result{}, err
	}
	res := Result{ID: e.ID, Kind: e.Kind}
	if l.key == nil || !saKeyUsable(l.key) {
		switch {
		case !l.keyOK && !l.certOK:
			res.Action = ActionCreate
		case !l.keyOK:
			res.Action, res.Reason = ActionReissue, e.KeyFile()+" missing"
		case l.keyErr != nil:
			res.Action, res.Reason = ActionReissue, l.keyErr.Error()
		default:
			res.Action, res.Reason = ActionReissue, fmt.Sprintf("%s: %T cannot sign service-account tokens", e.KeyFile(), l.key)
		}
		if res.Action == ActionReissue {
			res.Warning = fmt.Sprintf("key pair %s is replaced by a NEW key (%s): every service-account token signed with the old key stops working",
				e.ID, res.Reason)
		}
		key, err := newKey()
		if err != nil {
			return Result{}, err
		}
		pub, err := encodePublic(key.Public())
		if err != nil {
			return Result{}, err
		}
		return res, writePair(s, e, key, pub)
	}
	switch {
	case !l.certOK:
		res.Reason = e.CertFile() + " missing"
	case l.certErr != nil:
		res.Reason = l.certErr.Error()
	case !samePublicKey(l.pub, l.key.Public()):
		res.Reason = e.CertFile() + " does not match " + e.KeyFile()
	default:
		res.Action = ActionKeep
		return res, nil
	}
	res.Action = ActionReissue
	res.Reason += "; rewritten from " + e.KeyFile()
	pub, err := encodePublic(l.key.Public())
	if err != nil {
		return Result{}, err
	}
	return res, s.Write(e.CertFile(), pub, ModeCert)
}

func ensureLeaf(s Store, e Entry, iss *issuer, caReplaced bool, o Options) (Result, error) {
	l, err := load(s, e)
	if err != nil {
		return Result{}, err
	}
	res := Result{ID: e.ID, Kind: e.Kind}
	problems, renewOnly := leafProblems(e, l, iss, caReplaced, o)
	switch {
	case !l.certOK && !l.keyOK:
		res.Action = ActionCreate
	case len(problems) == 0:
		res.Action, res.NotAfter = ActionKeep, l.cert.NotAfter
		return res, nil
	case renewOnly:
		res.Action, res.Reason = ActionRenew, strings.Join(problems, "; ")
	default:
		res.Action, res.Reason = ActionReissue, strings.Join(problems, "; ")
	}
	key, err := newKey()
	if err != nil {
		return Result{}, err
	}
	cert, der, err := signLeaf(e, key.Public(), *iss, o.Now, o.validity(e))
	if err != nil {
		return Result{}, err
	}
	if err := writePair(s, e, key, encodeCert(der)); err != nil {
		return Result{}, err
	}
	res.NotAfter = cert.NotAfter
	return res, nil
}

// leafProblems lists why a stored leaf cannot be kept. renewOnly is true
// when expiry is the only reason.
func leafProblems(e Entry, l loaded, iss *issuer, caReplaced bool, o Options) (problems []string, renewOnly bool) {
	if !l.certOK {
		problems = append(problems, e.CertFile()+" missing")
	} else if l.certErr != nil {
		problems = append(problems, l.certErr.Error())
	}
	if !l.keyOK {
		problems = append(problems, e.KeyFile()+" missing")
	} else if l.keyErr != nil {
		problems = append(problems, l.keyErr.Error())
	}
	c := l.cert
	if c == nil {
		return problems, false
	}
	if l.key != nil && !samePublicKey(c.PublicKey, l.key.Public()) {
		problems = append(problems, e.CertFile()+" does not match "+e.KeyFile())
	}
	if !bytes.Equal(c.RawIssuer, iss.cert.RawSubject) || c.CheckSignatureFrom(iss.cert) != nil {
		if caReplaced {
			problems = append(problems, "signed by the replaced "+e.CA)
		} else {
			problems = append(problems, "not signed by the current "+e.CA)
		}
	}
	if c.Subject.CommonName != e.CommonName {
		problems = append(problems, fmt.Sprintf("common name %q, want %q", c.Subject.CommonName, e.CommonName))
	}
	if !slices.Equal(sortedUnique(c.Subject.Organization), sortedUnique(e.Organization)) {
		problems = append(problems, fmt.Sprintf("organization %q, want %q", c.Subject.Organization, e.Organization))
	}
	if d := sanDiff(e, c); d != "" {
		problems = append(problems, "SANs changed: "+d)
	}
	if u, ok := certUsage(c); !ok || u != e.Usage {
		problems = append(problems, fmt.Sprintf("usages %s, want %s", usageText(c), e.Usage))
	}
	if c.IsCA {
		problems = append(problems, "is a CA certificate")
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		problems = append(problems, "key usage lacks digital signature")
	}
	if o.Now.Before(c.NotBefore) {
		problems = append(problems, "not valid before "+c.NotBefore.UTC().Format(time.RFC3339))
	}
	if c.NotAfter.Sub(o.Now) < o.RenewBefore {
		problems = append(problems, expiry(c.NotAfter, o.Now))
		return problems, len(problems) == 1
	}
	return problems, false
}

// sanDiff describes how c's SANs differ from e's: "+10.0.0.5 -old.example".
// Desired names first, then addresses.
func sanDiff(e Entry, c *x509.Certificate) string {
	var have []string
	have = append(have, c.DNSNames...)
	var haveIPs []netip.Addr
	for _, ip := range c.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			haveIPs = append(haveIPs, a.Unmap())
		}
	}
	for _, a := range sortedAddrs(haveIPs) {
		have = append(have, a.String())
	}
	for _, u := range c.URIs {
		have = append(have, u.String())
	}
	have = append(have, c.EmailAddresses...)
	want := slices.Clone(sortedUnique(e.DNSNames))
	for _, a := range sortedAddrs(e.IPs) {
		want = append(want, a.String())
	}
	var d []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			d = append(d, "+"+w)
		}
	}
	for _, h := range have {
		if !slices.Contains(want, h) {
			d = append(d, "-"+h)
		}
	}
	return strings.Join(d, " ")
}

// certUsage maps c's extended key usages to a Usage; ok is false when c
// has usages the table never asks for (or none, which means any).
func certUsage(c *x509.Certificate) (u Usage, ok bool) {
	if len(c.UnknownExtKeyUsage) > 0 || len(c.ExtKeyUsage) == 0 {
		return 0, false
	}
	for _, x := range c.ExtKeyUsage {
		switch x {
		case x509.ExtKeyUsageServerAuth:
			u |= UsageServer
		case x509.ExtKeyUsageClientAuth:
			u |= UsageClient
		default:
			return 0, false
		}
	}
	return u, true
}

func usageText(c *x509.Certificate) string {
	if u, ok := certUsage(c); ok {
		return u.String()
	}
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return "unrestricted"
	}
	return "other"
}

func expiry(notAfter, now time.Time) string {
	d := notAfter.Sub(now)
	if d <= 0 {
		return "expired " + within(d)
	}
	return "expires " + within(d)
}

// writePair writes the key, then the certificate: a run cut in between
// leaves a key that does not match its certificate, which the next run
// repairs the same way this one would have.
func writePair(s Store, e Entry, key crypto.Signer, certPEM []byte) error {
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	if err := s.Write(e.KeyFile(), keyPEM, ModeKey); err != nil {
		return err
	}
	return s.Write(e.CertFile(), certPEM, ModeCert)
}

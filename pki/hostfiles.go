package pki

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// HostFile is one PKI file a host needs. Exactly one of Local and
// Kubeconfig is set.
type HostFile struct {
	Path       string      // absolute path on the host
	Mode       fs.FileMode // ModeKey for keys and kubeconfigs, ModeCert for certificates
	Local      string      // a file copied as is: its path in the local PKI store
	Kubeconfig string      // a rendered kubeconfig: its name in the table
}

// HostFiles lists what the table puts on one host, sorted by path. Under
// HostPKIDir the layout mirrors the local store. Control planes also hold
// every CA key, which kube-controller-manager needs for the cluster CA and
// which lets a lost local state be restored from any control plane
// (Restore). An unknown host gets nothing.
func HostFiles(t Table, host string) []HostFile {
	var out []HostFile
	for _, e := range t.Certs {
		if slices.Contains(e.CertHosts, host) {
			out = append(out, HostFile{Path: HostPath(e.CertFile()), Mode: ModeCert, Local: e.CertFile()})
		}
		if slices.Contains(e.KeyHosts, host) {
			out = append(out, HostFile{Path: HostPath(e.KeyFile()), Mode: ModeKey, Local: e.KeyFile()})
		}
	}
	for _, k := range t.Kubeconfigs {
		if k.HostPath != "" && slices.Contains(k.Hosts, host) {
			out = append(out, HostFile{Path: k.HostPath, Mode: ModeKey, Kubeconfig: k.Name})
		}
	}
	slices.SortFunc(out, func(a, b HostFile) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// HostFileData returns the content of f from the local store.
func HostFileData(r Reader, t Table, f HostFile) ([]byte, error) {
	switch {
	case f.Local != "" && f.Kubeconfig == "":
		b, err := r.Read(f.Local)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %w", f.Path, err)
		}
		return b, nil
	case f.Kubeconfig != "" && f.Local == "":
		return RenderKubeconfig(r, t, f.Kubeconfig)
	}
	return nil, fmt.Errorf("pki: host file %s: set exactly one of Local and Kubeconfig", f.Path)
}

// Restore copies one host's PKI files back into the local store: the way
// to rebuild a lost .clusterctl/pki from a control plane, which holds every
// CA key and the service-account key. src reads absolute paths on that
// host. Client certificates embedded in the host's kubeconfigs are
// extracted too, so the components using them need no new certificate.
//
// Files the host lacks are skipped (Ensure creates them). Every file must
// parse, and an embedded pair must match. A file already in dst with the
// same content is left alone; with different content it is an error:
// Restore never overwrites local state. Keys are written before
// certificates. It returns the local paths written.
func Restore(dst Store, src Reader, t Table, host string) ([]string, error) {
	type item struct {
		from, local string
		mode        fs.FileMode
		data        []byte
	}
	var items []item
	var errs []error
	for _, f := range HostFiles(t, host) {
		data, present, err := readOptional(src, f.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("pki restore from %s: %w", host, err))
			continue
		}
		if !present {
			continue
		}
		if f.Local != "" {
			if err := checkPEM(f.Path, data); err != nil {
				errs = append(errs, fmt.Errorf("pki restore from %s: %w", host, err))
				continue
			}
			items = append(items, item{f.Path, f.Local, f.Mode, data})
			continue
		}
		k, _ := t.Kubeconfig(f.Kubeconfig)
		e, _ := t.Entry(k.Cert)
		certPEM, keyPEM, err := embeddedPair(f.Path, data)
		if err != nil {
			errs = append(errs, fmt.Errorf("pki restore from %s: %w", host, err))
			continue
		}
		items = append(items, item{f.Path, e.KeyFile(), ModeKey, keyPEM}, item{f.Path, e.CertFile(), ModeCert, certPEM})
	}
	// Keys first, as Ensure writes them.
	slices.SortStableFunc(items, func(a, b item) int {
		return boolOrder(!strings.HasSuffix(a.local, ".key"), !strings.HasSuffix(b.local, ".key"))
	})
	var written []string
	for _, it := range items {
		have, exists, err := readOptional(dst, it.local)
		if err != nil {
			errs = append(errs, fmt.Errorf("pki restore from %s: %w", host, err))
			continue
		}
		if exists {
			if !bytes.Equal(have, it.data) {
				errs = append(errs, fmt.Errorf("pki restore from %s: %s differs from the local %s; refusing to overwrite local state", host, it.from, it.local))
			}
			continue
		}
		if err := dst.Write(it.local, it.data, it.mode); err != nil {
			errs = append(errs, fmt.Errorf("pki restore from %s: %s: %w", host, it.local, err))
			continue
		}
		written = append(written, it.local)
	}
	return written, errors.Join(errs...)
}

// embeddedPair extracts client-certificate-data and client-key-data from
// a kubeconfig with one user (as written by Kubeconfig or kubeadm) and
// checks that they are a matching pair.
func embeddedPair(name string, kubeconfig []byte) (certPEM, keyPEM []byte, err error) {
	for _, l := range strings.Split(string(kubeconfig), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			continue
		}
		var dst *[]byte
		switch k {
		case "client-certificate-data":
			dst = &certPEM
		case "client-key-data":
			dst = &keyPEM
		default:
			continue
		}
		if *dst != nil {
			return nil, nil, fmt.Errorf("%s: more than one %s", name, k)
		}
		b, err := base64.StdEncoding.DecodeString(strings.Trim(strings.TrimSpace(v), `"'`))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", name, k, err)
		}
		*dst = b
	}
	if certPEM == nil || keyPEM == nil {
		return nil, nil, fmt.Errorf("%s: no embedded client certificate and key", name)
	}
	cert, err := parseCert(name+" client-certificate-data", certPEM)
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKey(name+" client-key-data", keyPEM)
	if err != nil {
		return nil, nil, err
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("%s: client certificate does not match client key", name)
	}
	return certPEM, keyPEM, nil
}

func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// checkPEM parses a restored file by its extension.
func checkPEM(name string, data []byte) error {
	var err error
	switch path.Ext(name) {
	case ".key":
		_, err = parseKey(name, data)
	case ".crt":
		_, err = parseCert(name, data)
	case ".pub":
		_, err = parsePublic(name, data)
	default:
		err = fmt.Errorf("%s: not a PKI file", name)
	}
	return err
}

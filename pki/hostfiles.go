package pki

import (
	"bytes"
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

// Restore copies a host's PKI files back into the local store: the way to
// rebuild a lost .clusterctl/pki from a control plane, whose HostFiles
// include every CA key and the service-account key. host reads absolute
// paths on that host. Files the host lacks are skipped (Ensure creates
// them); files already in dst with the same content are left alone, and a
// file in dst with different content is an error: Restore never overwrites
// local state. Keys are restored before certificates, and every file must
// parse. It returns the local paths written.
func Restore(dst Store, host Reader, files []HostFile) ([]string, error) {
	var local []HostFile
	for _, f := range files {
		if f.Local != "" {
			local = append(local, f)
		}
	}
	// Keys first, as Ensure writes them.
	slices.SortStableFunc(local, func(a, b HostFile) int {
		return boolOrder(!strings.HasSuffix(a.Local, ".key"), !strings.HasSuffix(b.Local, ".key"))
	})
	var written []string
	var errs []error
	for _, f := range local {
		data, present, err := readOptional(host, f.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("pki restore: %w", err))
			continue
		}
		if !present {
			continue
		}
		if err := checkPEM(f.Path, data); err != nil {
			errs = append(errs, fmt.Errorf("pki restore: %w", err))
			continue
		}
		have, exists, err := readOptional(dst, f.Local)
		if err != nil {
			errs = append(errs, fmt.Errorf("pki restore: %w", err))
			continue
		}
		if exists {
			if !bytes.Equal(have, data) {
				errs = append(errs, fmt.Errorf("pki restore: %s differs from the local %s; refusing to overwrite local state", f.Path, f.Local))
			}
			continue
		}
		if err := dst.Write(f.Local, data, f.Mode); err != nil {
			errs = append(errs, fmt.Errorf("pki restore: %s: %w", f.Local, err))
			continue
		}
		written = append(written, f.Local)
	}
	return written, errors.Join(errs...)
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

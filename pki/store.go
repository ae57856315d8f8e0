package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Reader reads one file by slash-separated path. A missing file is an error
// that matches fs.ErrNotExist.
type Reader interface {
	Read(path string) ([]byte, error)
}

// Store is where the PKI lives: the local .clusterctl/pki folder, or a test
// double. Write must replace the file atomically: a reader sees the old
// content or the new, never a mix.
type Store interface {
	Reader
	Write(path string, data []byte, mode fs.FileMode) error
}

// File modes: private keys and kubeconfigs (which embed keys) are readable
// by the owner only.
const (
	ModeKey  fs.FileMode = 0o600
	ModeCert fs.FileMode = 0o644
	ModeDir  fs.FileMode = 0o700
)

// DirStore keeps files under Root. Folders are created 0700; each write
// goes to a temporary file that is synced and renamed into place.
type DirStore struct {
	Root string
}

var _ Store = DirStore{}

func (d DirStore) file(p string) (string, error) {
	if !fs.ValidPath(p) || p == "." {
		return "", fmt.Errorf("pki store: invalid path %q", p)
	}
	return filepath.Join(d.Root, filepath.FromSlash(p)), nil
}

// Read returns the content of p.
func (d DirStore) Read(p string) ([]byte, error) {
	f, err := d.file(p)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(f)
}

// Write replaces p with data and sets its mode.
func (d DirStore) Write(p string, data []byte, mode fs.FileMode) (err error) {
	f, err := d.file(p)
	if err != nil {
		return err
	}
	dir := filepath.Dir(f)
	if err := os.MkdirAll(dir, ModeDir); err != nil {
		return fmt.Errorf("pki store: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki store: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file 0600, so key bytes are never readable by
	// others, not even for a moment.
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("pki store: write %s: %w", p, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("pki store: chmod %s: %w", p, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("pki store: sync %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki store: close %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), f); err != nil {
		return fmt.Errorf("pki store: rename %s: %w", p, err)
	}
	// Sync the folder so the rename itself survives a crash.
	if df, err := os.Open(dir); err == nil {
		syncErr := df.Sync()
		df.Close()
		if syncErr != nil {
			return fmt.Errorf("pki store: sync folder of %s: %w", p, syncErr)
		}
	}
	return nil
}

// overlay records writes in memory on top of a Reader. Check runs the same
// code as Ensure against an overlay, so plan and apply cannot disagree.
type overlay struct {
	base    Reader
	written map[string][]byte
}

func (o *overlay) Read(p string) ([]byte, error) {
	if b, ok := o.written[p]; ok {
		return b, nil
	}
	return o.base.Read(p)
}

func (o *overlay) Write(p string, data []byte, _ fs.FileMode) error {
	if o.written == nil {
		o.written = map[string][]byte{}
	}
	o.written[p] = data
	return nil
}

// readOptional reads p; a missing file is not an error but present=false.
func readOptional(r Reader, p string) (data []byte, present bool, err error) {
	b, err := r.Read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", p, err)
	}
	return b, true, nil
}

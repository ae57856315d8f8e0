// Package atomicfile writes files so that a reader, or a crash, sees the
// old content or the new one, never half: a temporary file in the same
// folder (its mode set before any byte is written, so a secret is never
// readable by others), synced, renamed over the target, and the folder
// synced so the rename survives a power cut.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data and gives it mode. The folder must exist.
func Write(path string, data []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: some filesystems cannot sync a folder
		d.Close()
	}
	return nil
}

// WriteKeepMode is Write with the mode the file already has (def when it
// does not exist yet), for rewriting a user's files in place.
func WriteKeepMode(path string, data []byte, def fs.FileMode) error {
	mode := def
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	return Write(path, data, mode)
}

package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"
)

// Bounds on what the spec loader reads. A spec of a thousand hosts is
// about 100 KiB; the HCL parser needs some hundred times a file's size in
// memory, so these keep /dev/zero or a runaway generator to well under a
// gigabyte and a few seconds.
const (
	// MaxFileSize bounds each file: spec files, variable files and the
	// files a spec names for their content (ca_file).
	MaxFileSize = 1 << 20
	// MaxSpecSize bounds the spec and variable files of one spec together.
	MaxSpecSize = 2 << 20
)

// Sentinel errors of ReadFile and ReadSpecFile, for errors.Is.
var (
	ErrTooLarge      = errors.New("file too large")
	ErrNotRegular    = errors.New("not a regular file")
	ErrOutsideFolder = errors.New("symlink to outside the spec folder")
)

// FileError is a refusal to read a file: "NAME: PROBLEM". Err is one of the
// sentinels above, or the error of the operating system.
type FileError struct {
	Name    string // as the user wrote it, or relative to the spec folder
	Problem string
	Err     error
}

func (e *FileError) Error() string { return e.Name + ": " + e.Problem }
func (e *FileError) Unwrap() error { return e.Err }

// sizeText renders a byte count the way limits are named: "4 MiB".
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ReadFile reads the regular file at path, refusing anything else
// (devices, FIFOs, sockets, folders) and files larger than limit bytes.
// name is how errors call the file. Symlinks are followed: use
// ReadSpecFile for files found in a spec folder.
func ReadFile(path, name string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, &FileError{Name: name, Problem: osProblem(err), Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(name, st.Mode())
	}
	// O_NONBLOCK: should the file turn into a FIFO after the Stat, opening
	// it does not wait for a writer; the check below then refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, &FileError{Name: name, Problem: osProblem(err), Err: err}
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, &FileError{Name: name, Problem: osProblem(err), Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(name, st.Mode())
	}
	if st.Size() > limit {
		return nil, tooLarge(name, limit)
	}
	return readBounded(f, name, limit)
}

// readBounded reads r to its end, refusing more than limit bytes (files
// such as those of /proc report size 0 and still have content).
func readBounded(r io.Reader, name string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, &FileError{Name: name, Problem: osProblem(err), Err: err}
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(name, limit)
	}
	return b, nil
}

// ReadStream is readBounded for streams such as standard input.
func ReadStream(r io.Reader, name string, limit int64) ([]byte, error) {
	return readBounded(r, name, limit)
}

func tooLarge(name string, limit int64) error {
	return &FileError{Name: name, Problem: "larger than " + sizeText(limit), Err: ErrTooLarge}
}

func notRegular(name string, mode fs.FileMode) error {
	kind := "not a regular file"
	switch {
	case mode.IsDir():
		kind += " (a folder)"
	case mode&fs.ModeNamedPipe != 0:
		kind += " (a FIFO)"
	case mode&fs.ModeSocket != 0:
		kind += " (a socket)"
	case mode&fs.ModeDevice != 0:
		kind += " (a device)"
	}
	return &FileError{Name: name, Problem: kind, Err: ErrNotRegular}
}

// osProblem is the operating system's reason without the path it repeats.
func osProblem(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// ReadSpecFile reads rel, a file inside the spec folder dir (rel may lie
// in a subfolder). A symlink is followed only when its resolved target is
// inside dir too; otherwise the file is refused with ErrOutsideFolder and
// nothing of it is read. Errors name the file as rel.
func ReadSpecFile(dir, rel string) ([]byte, error) {
	path, err := resolveInside(dir, rel)
	if err != nil {
		return nil, err
	}
	return ReadFile(path, rel, MaxFileSize)
}

// ResolveSpecFile is the real path of rel inside dir, refused with
// ErrOutsideFolder when a symlink leads out of dir.
func ResolveSpecFile(dir, rel string) (string, error) { return resolveInside(dir, rel) }

// resolveInside returns the real path of dir/rel, refusing a path whose
// symlinks lead outside dir.
func resolveInside(dir, rel string) (string, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", &FileError{Name: dir, Problem: osProblem(err), Err: err}
	}
	if root, err = filepath.Abs(root); err != nil {
		return "", &FileError{Name: dir, Problem: err.Error(), Err: err}
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dir, rel))
	if err != nil {
		return "", &FileError{Name: rel, Problem: osProblem(err), Err: err}
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", &FileError{Name: rel, Problem: err.Error(), Err: err}
	}
	if !within(root, real) {
		return "", &FileError{Name: rel, Problem: ErrOutsideFolder.Error(), Err: ErrOutsideFolder}
	}
	return real, nil
}

// within reports whether path is root or below it (both absolute, clean).
func within(root, path string) bool {
	r, err := filepath.Rel(root, path)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator)) && !filepath.IsAbs(r)
}

// insideLexically reports whether the relative path p stays inside the
// folder it is relative to, as written.
func insideLexically(p string) bool {
	if filepath.IsAbs(p) {
		return false
	}
	c := filepath.Clean(p)
	return c != ".." && !strings.HasPrefix(c, ".."+string(filepath.Separator))
}

// ReadSource reads a file the way Load read it, for showing source lines
// of diagnostics: name is a diagnostic's file name, relative to the spec
// folder dir (spec files, and -var-file paths inside the folder, with the
// symlink rule of ReadSpecFile) or a -var-file path outside it.
func ReadSource(dir, name string) ([]byte, error) {
	if insideLexically(name) {
		return ReadSpecFile(dir, name)
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	return ReadFile(path, name, MaxFileSize)
}

// fileProblem is what is wrong with a file, without its name.
func fileProblem(err error) string {
	var fe *FileError
	if errors.As(err, &fe) {
		return fe.Problem
	}
	return err.Error()
}

// fileDiag turns a read error into a diagnostic without a source range:
// the file's content is never shown. summary is for errors of the
// operating system; refusals say what they are.
func fileDiag(summary string, err error) *hcl.Diagnostic {
	switch {
	case errors.Is(err, ErrTooLarge):
		summary = "File too large"
	case errors.Is(err, ErrNotRegular):
		summary = "Not a regular file"
	case errors.Is(err, ErrOutsideFolder):
		summary = "Symlink outside the spec folder"
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error() + "."}
}

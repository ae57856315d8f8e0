package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
	"github.com/clusterctl/clusterctl/internal/filesum"
)

// ManifestName is the file, inside an artifact folder, that records what the
// folder holds. It is written last: a folder without it is not in the cache.
const ManifestName = "manifest.json"

// ErrNotCached reports that an artifact is absent (or incomplete) in the
// cache; building or fetching it helps.
var ErrNotCached = errors.New("not in the artifact cache")

// Cache is the local artifact cache:
//
//	<Root>/<component>/<version>/<os>-<arch>/{files..., manifest.json}
//
// It is shared by every clone on the machine.
type Cache struct {
	Root string
}

// BaseDir is ${XDG_CACHE_HOME:-$HOME/.cache}/clusterctl: the artifact cache
// lives in its "artifacts" folder, build workspaces in "build".
func BaseDir() (string, error) {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		if !filepath.IsAbs(x) {
			return "", fmt.Errorf("XDG_CACHE_HOME=%q is not an absolute path", x)
		}
		return filepath.Join(x, "clusterctl"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locating the artifact cache: %w", err)
	}
	return filepath.Join(home, ".cache", "clusterctl"), nil
}

// DefaultCache is the cache under BaseDir.
func DefaultCache() (*Cache, error) {
	base, err := BaseDir()
	if err != nil {
		return nil, err
	}
	return &Cache{Root: filepath.Join(base, "artifacts")}, nil
}

// Dir is the folder of one artifact for one platform.
func (c *Cache) Dir(component, version string, p Platform) string {
	return filepath.Join(c.Root, component, version, p.String())
}

// FileEntry is one file of an artifact.
type FileEntry struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Manifest describes one cached artifact.
type Manifest struct {
	Component string    `json:"component"`
	Version   string    `json:"version"`
	OS        string    `json:"os"`
	Arch      string    `json:"arch"`
	Source    string    `json:"source"`              // module@version and how it was built, or the download URL
	BuiltAt   time.Time `json:"built_at"`            // when this entry was made
	Seconds   float64   `json:"seconds"`             // how long building or downloading took
	Toolchain string    `json:"toolchain,omitempty"` // Go version used for a source build
	Image     string    `json:"image,omitempty"`     // image reference inside an image archive
	// Recipe fingerprints how the files were made: "build:<sha256 of the
	// build inputs>" or "download:<sha256 of the download>". A build whose
	// inputs changed does not reuse the entry.
	Recipe string      `json:"recipe,omitempty"`
	Files  []FileEntry `json:"files"`
}

// Platform of the manifest.
func (m Manifest) Platform() Platform { return Platform{OS: m.OS, Arch: m.Arch} }

// Size is the total of the artifact's file sizes.
func (m Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// File returns the entry named name.
func (m Manifest) File(name string) (FileEntry, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return FileEntry{}, false
}

// ReadManifest reads the manifest of an artifact; a missing manifest is
// ErrNotCached.
func (c *Cache) ReadManifest(component, version string, p Platform) (Manifest, error) {
	path := filepath.Join(c.Dir(component, version, p), ManifestName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("%s %s %s: %w", component, version, p, ErrNotCached)
	}
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	if m.Component != component || m.Version != version || m.Platform() != p {
		return Manifest{}, fmt.Errorf("%s: describes %s %s %s, not %s %s %s", path, m.Component, m.Version, m.Platform(), component, version, p)
	}
	return m, nil
}

// Commit records a finished artifact: it hashes every file named in files
// (already in place in the artifact folder), fills m.Files and writes the
// manifest atomically. Only after Commit does the artifact count as cached.
func (c *Cache) Commit(m Manifest, files []string) (Manifest, error) {
	dir := c.Dir(m.Component, m.Version, m.Platform())
	m.Files = nil
	for _, name := range files {
		sum, size, err := HashFile(filepath.Join(dir, name))
		if err != nil {
			return Manifest{}, err
		}
		m.Files = append(m.Files, FileEntry{Name: name, SHA256: sum, Size: size})
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	if err := WriteFileAtomic(filepath.Join(dir, ManifestName), append(data, '\n'), 0o644); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Invalidate removes an artifact's manifest so that it no longer counts as
// cached; its files are left to be overwritten.
func (c *Cache) Invalidate(component, version string, p Platform) error {
	err := os.Remove(filepath.Join(c.Dir(component, version, p), ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Lookup returns the path and sha256 of one file of a cached artifact, for
// example kubelet 1.37.2 linux/amd64. The file is checked against its
// recorded size, not re-hashed: VerifyArtifact does that.
func (c *Cache) Lookup(component, version string, p Platform, file string) (path, sha string, err error) {
	m, err := c.ReadManifest(component, version, p)
	if err != nil {
		return "", "", err
	}
	f, ok := m.File(file)
	if !ok {
		return "", "", fmt.Errorf("%s %s %s has no file %q", component, version, p, file)
	}
	path = filepath.Join(c.Dir(component, version, p), file)
	st, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("%s %s %s: %w", component, version, p, err)
	}
	if st.Size() != f.Size {
		return "", "", fmt.Errorf("%s: size %d, manifest says %d; run `clusterctl bundle build`", path, st.Size(), f.Size)
	}
	return path, f.SHA256, nil
}

// VerifyArtifact re-hashes every file of a cached artifact and compares it
// with the manifest; the error names each file that does not match.
func (c *Cache) VerifyArtifact(component, version string, p Platform) (Manifest, error) {
	m, err := c.ReadManifest(component, version, p)
	if err != nil {
		return Manifest{}, err
	}
	return m, c.verifyFiles(m)
}

func (c *Cache) verifyFiles(m Manifest) error {
	dir := c.Dir(m.Component, m.Version, m.Platform())
	if len(m.Files) == 0 {
		return fmt.Errorf("%s: manifest lists no files", filepath.Join(dir, ManifestName))
	}
	var errs []error
	for _, f := range m.Files {
		path := filepath.Join(dir, f.Name)
		sum, size, err := HashFile(path)
		switch {
		case err != nil:
			errs = append(errs, err)
		case size != f.Size:
			errs = append(errs, fmt.Errorf("%s: size %d, manifest says %d", path, size, f.Size))
		case sum != f.SHA256:
			errs = append(errs, fmt.Errorf("%s: sha256 %s, manifest says %s", path, sum, f.SHA256))
		}
	}
	return errors.Join(errs...)
}

// List returns the manifests of every artifact in the cache, sorted by
// component, version and platform. Folders without a manifest (interrupted
// builds) are not listed.
func (c *Cache) List() ([]Manifest, error) {
	paths, err := filepath.Glob(filepath.Join(c.Root, "*", "*", "*", ManifestName))
	if err != nil {
		return nil, err
	}
	var out []Manifest
	var errs []error
	for _, path := range paths {
		rel, _ := filepath.Rel(c.Root, filepath.Dir(path))
		parts := splitPath(rel)
		p, err := ParsePlatform(parts[2])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		m, err := c.ReadManifest(parts[0], parts[1], p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Component != b.Component {
			return a.Component < b.Component
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Platform().String() < b.Platform().String()
	})
	return out, errors.Join(errs...)
}

// Verify re-hashes every file of every cached artifact. The error joins one
// error per bad file, each naming the file.
func (c *Cache) Verify() ([]Manifest, error) {
	ms, err := c.List()
	errs := []error{err}
	for _, m := range ms {
		errs = append(errs, c.verifyFiles(m))
	}
	return ms, errors.Join(errs...)
}

func splitPath(rel string) []string {
	var parts []string
	for rel != "." && rel != "" {
		dir, file := filepath.Split(rel)
		parts = append([]string{file}, parts...)
		rel = filepath.Clean(dir)
		if dir == "" {
			break
		}
	}
	return parts
}

// HashFile returns the hex sha256 and size of a file.
func HashFile(path string) (sum string, size int64, err error) {
	return filesum.Hash(path)
}

// WriteFileAtomic writes data so that readers see the old content or the
// new one, never half (see internal/atomicfile).
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	return atomicfile.Write(path, data, perm)
}

// TempFile creates an empty temporary file next to final (same folder, so the
// later rename is atomic), creating the folder if needed.
func TempFile(final string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(filepath.Dir(final), ".tmp-"+filepath.Base(final)+"-*")
}

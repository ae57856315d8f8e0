// Package filesum computes the sha256 of files and remembers it, keyed by
// what moves whenever a file's content can have changed: device, inode,
// size, mtime and ctime. Writing a file moves its ctime, which no program
// can set back, and a replaced file has a new inode (git's index and rsync
// tell changed files apart the same way). So a cached digest is as good as
// reading the file, at the cost of a stat.
package filesum

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
)

// Cache remembers digests, in memory and, when it has a path, in a file.
// It is safe for concurrent use.
type Cache struct {
	path  string
	mu    sync.Mutex
	m     map[string]entry
	dirty bool
}

type entry struct {
	Dev, Ino         uint64
	Size             int64
	MtimeNS, CtimeNS int64
	SHA256           string
}

func (e entry) same(o entry) bool {
	return e.Dev == o.Dev && e.Ino == o.Ino && e.Size == o.Size && e.MtimeNS == o.MtimeNS && e.CtimeNS == o.CtimeNS
}

// Open returns a cache backed by path ("" keeps it in memory). A missing
// or damaged file is an empty cache: the digests are computed again.
func Open(path string) *Cache {
	c := &Cache{path: path, m: map[string]entry{}}
	if path != "" {
		if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &c.m) != nil {
			c.m = map[string]entry{}
		}
	}
	return c
}

// Sum returns the sha256 (hex) and size of the regular file at p.
func (c *Cache) Sum(p string) (string, int64, error) {
	id, err := stat(p)
	if err != nil {
		return "", 0, err
	}
	c.mu.Lock()
	e, ok := c.m[p]
	c.mu.Unlock()
	if ok && e.SHA256 != "" && e.same(id) {
		return e.SHA256, e.Size, nil
	}
	sum, n, err := Hash(p)
	if err != nil {
		return "", 0, err
	}
	// A file written while it was read gets no record (its ctime moved):
	// it is read again next time.
	if after, err := stat(p); err == nil && after.same(id) && n == id.Size {
		id.SHA256 = sum
		c.mu.Lock()
		c.m[p], c.dirty = id, true
		c.mu.Unlock()
	}
	return sum, n, nil
}

// Save writes the cache file (0600, atomically) if anything was added.
func (c *Cache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.path == "" || !c.dirty {
		return nil
	}
	b, err := json.Marshal(c.m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(c.path, b, 0o600); err != nil {
		return err
	}
	c.dirty = false
	return nil
}

func stat(p string) (entry, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return entry{}, err
	}
	if !fi.Mode().IsRegular() {
		return entry{}, &fs.PathError{Op: "sha256", Path: p, Err: fmt.Errorf("not a regular file")}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return entry{}, &fs.PathError{Op: "sha256", Path: p, Err: fmt.Errorf("no inode information")}
	}
	return entry{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size,
		MtimeNS: st.Mtim.Sec*1e9 + st.Mtim.Nsec, CtimeNS: st.Ctim.Sec*1e9 + st.Ctim.Nsec}, nil
}

// Hash reads the file at p and returns its sha256 (hex) and size.
func Hash(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

package filesum

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

func TestCache(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "cache.json")
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sumOf := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	check := func(c *Cache, p, want string) {
		t.Helper()
		got, n, err := c.Sum(p)
		if err != nil || got != sumOf(want) || n != int64(len(want)) {
			t.Errorf("Sum(%s) = %s %d %v, want the digest of %q", filepath.Base(p), got, n, err, want)
		}
	}
	write(a, "alpha")
	write(b, "beta")
	c := Open(path)
	check(c, a, "alpha")
	check(c, b, "beta")
	if _, _, err := c.Sum(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file has a digest")
	}
	if _, _, err := c.Sum(dir); err == nil {
		t.Error("a folder has a digest")
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", fi, err)
	}

	// A hit is not read again: a recorded digest comes back for a file
	// whose identity matches (the record is doctored to prove it).
	c = Open(path)
	e := c.m[a]
	e.SHA256 = sumOf("from the cache")
	c.m[a] = e
	if got, _, _ := c.Sum(a); got != sumOf("from the cache") {
		t.Errorf("an unchanged file was read again")
	}

	// An edit that keeps size and mtime still moves ctime: read again.
	c = Open(path)
	fi, _ := os.Stat(b)
	write(b, "BETA")
	os.Chtimes(b, fi.ModTime(), fi.ModTime())
	check(c, b, "BETA")
	// A file replaced by another (new inode) is read again.
	write(filepath.Join(dir, "new"), "gamma")
	if err := os.Rename(filepath.Join(dir, "new"), a); err != nil {
		t.Fatal(err)
	}
	check(c, a, "gamma")
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	// A damaged cache file is an empty cache.
	write(path, "{not json")
	c = Open(path)
	check(c, a, "gamma")
	check(c, b, "BETA")
	// Memory only.
	c = Open("")
	check(c, a, "gamma")
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
}

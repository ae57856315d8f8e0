// Package bundletest gives tests an artifact cache without building the
// bundle: a small stand-in file for every artifact of the newest release.
package bundletest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/clusterctl/clusterctl/bundle"
)

// Cache is a committed cache in a temporary folder whose every file holds
// its component and name, for the host's platform.
func Cache(t testing.TB) *bundle.Cache {
	t.Helper()
	c := &bundle.Cache{Root: t.TempDir()}
	p := bundle.HostPlatform()
	for _, a := range bundle.Latest().Artifacts() {
		dir := c.Dir(a.Component, a.Version, p)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range a.Files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(a.Component+"/"+f), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Commit(bundle.Manifest{Component: a.Component, Version: a.Version, OS: p.OS, Arch: p.Arch}, a.Files); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

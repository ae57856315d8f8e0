package build

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/bundle"
)

func TestEnsureBuildsReusesAndRebuildsCorrupted(t *testing.T) {
	base := t.TempDir()
	var out bytes.Buffer
	b := &Builder{Cache: &bundle.Cache{Root: filepath.Join(base, "artifacts")}, WorkRoot: filepath.Join(base, "build"), Out: &out}
	a, err := bundle.FindArtifact(bundle.PauseImage, bundle.Latest().Pause)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	r, err := b.Ensure(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reused || !strings.HasPrefix(out.String(), "building pause-image v3.10 ") {
		t.Errorf("first Ensure: reused=%v, output %q", r.Reused, out.String())
	}
	path, sum, err := b.Cache.Lookup(a.Component, a.Version, b.platform(), "pause.tar")
	if err != nil {
		t.Fatal(err)
	}
	if r.Manifest.Files[0].SHA256 != sum || r.Manifest.Image != a.Image || r.Manifest.Toolchain == "" {
		t.Errorf("manifest %+v", r.Manifest)
	}

	out.Reset()
	r, err = b.Ensure(ctx, a)
	if err != nil || !r.Reused || !strings.HasPrefix(out.String(), "reusing pause-image v3.10 ") {
		t.Errorf("second Ensure: reused=%v err=%v output %q", r.Reused, err, out.String())
	}

	// A corrupted cached file is noticed and rebuilt.
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 1
	os.WriteFile(path, data, 0o644)
	out.Reset()
	r, err = b.Ensure(ctx, a)
	if err != nil || r.Reused {
		t.Fatalf("Ensure after corruption: reused=%v err=%v", r.Reused, err)
	}
	if !strings.Contains(out.String(), "rebuilding pause-image v3.10") || !strings.Contains(out.String(), path) {
		t.Errorf("output does not say why it rebuilds: %q", out.String())
	}
	m, err := b.Cache.VerifyArtifact(a.Component, a.Version, b.platform())
	if err != nil {
		t.Errorf("after rebuild: %v", err)
	}

	// An entry made by another recipe is rebuilt; official downloads are
	// reused as they are.
	for recipe, wantReused := range map[string]bool{"build:0123": false, "download:abcd": true} {
		m.Recipe = recipe
		if _, err := b.Cache.Commit(m, a.Files); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		r, err = b.Ensure(ctx, a)
		if err != nil || r.Reused != wantReused {
			t.Errorf("entry with recipe %s: reused=%v err=%v, want reused=%v", recipe, r.Reused, err, wantReused)
		}
		if !wantReused && !strings.Contains(out.String(), "recipe changed") {
			t.Errorf("output does not say the recipe changed: %q", out.String())
		}
	}
}

func TestFingerprint(t *testing.T) {
	p := bundle.Platform{OS: "linux", Arch: "amd64"}
	seen := map[string]string{}
	for _, a := range bundle.AllArtifacts() {
		f1, err := Fingerprint(a, p)
		if err != nil {
			t.Fatal(err)
		}
		f2, _ := Fingerprint(a, p)
		if f1 != f2 || !strings.HasPrefix(f1, "build:") {
			t.Errorf("%s: fingerprint %s then %s", a.ID(), f1, f2)
		}
		if other, dup := seen[f1]; dup {
			t.Errorf("%s and %s share a fingerprint", a.ID(), other)
		}
		seen[f1] = a.ID()
		arm, _ := Fingerprint(a, bundle.Platform{OS: "linux", Arch: "arm64"})
		if arm == f1 {
			t.Errorf("%s: same fingerprint on two platforms", a.ID())
		}
	}
}

func TestFailedBuildCachesNothing(t *testing.T) {
	base := t.TempDir()
	b := &Builder{Cache: &bundle.Cache{Root: filepath.Join(base, "artifacts")}, WorkRoot: filepath.Join(base, "build")}
	// An artifact no recipe knows: make fails before producing a file.
	a := bundle.Artifact{Component: "kube-frobnicator", Version: "1.0.0", Files: []string{"kube-frobnicator"}}
	if _, err := b.Ensure(context.Background(), a); err == nil || !strings.Contains(err.Error(), "kube-frobnicator v1.0.0") {
		t.Fatalf("Ensure of an unknown artifact: %v", err)
	}
	if _, err := b.Cache.ReadManifest(a.Component, a.Version, b.platform()); !errors.Is(err, bundle.ErrNotCached) {
		t.Errorf("failed build left a manifest: %v", err)
	}
	entries, _ := os.ReadDir(b.Cache.Dir(a.Component, a.Version, b.platform()))
	if len(entries) != 0 {
		t.Errorf("failed build left files: %v", entries)
	}
}

func TestPlaceFileRemovesTempOnFailure(t *testing.T) {
	dir := t.TempDir()
	err := placeFile(dir, "kubelet", func(tmp string) error {
		os.WriteFile(tmp, []byte("half a binary"), 0o600)
		return errors.New("compiler died")
	})
	if err == nil {
		t.Fatal("placeFile hid the failure")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
	if err := placeFile(dir, "kubelet", func(tmp string) error { return os.WriteFile(tmp, []byte("ok"), 0o600) }); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "kubelet"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("placed file: %v, %v; want mode 0755", st, err)
	}
}

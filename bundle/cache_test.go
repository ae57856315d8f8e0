package bundle

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// putArtifact writes files into the cache and commits a manifest for them.
func putArtifact(t *testing.T, c *Cache, component, version string, p Platform, files map[string]string) Manifest {
	t.Helper()
	dir := c.Dir(component, version, p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	m, err := c.Commit(Manifest{Component: component, Version: version, OS: p.OS, Arch: p.Arch, Source: "test", BuiltAt: time.Unix(0, 0).UTC()}, names)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDefaultCacheHonorsXDG(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/var/cache/someone")
	c, err := DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/var/cache/someone/clusterctl/artifacts"; c.Root != want {
		t.Errorf("root = %s, want %s", c.Root, want)
	}
	got := c.Dir("kubelet", "1.37.2", Platform{"linux", "amd64"})
	if want := "/var/cache/someone/clusterctl/artifacts/kubelet/1.37.2/linux-amd64"; got != want {
		t.Errorf("dir = %s, want %s", got, want)
	}

	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/ops")
	c, err = DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/home/ops/.cache/clusterctl/artifacts"; c.Root != want {
		t.Errorf("root without XDG_CACHE_HOME = %s, want %s", c.Root, want)
	}

	t.Setenv("XDG_CACHE_HOME", "relative/path")
	if _, err := DefaultCache(); err == nil {
		t.Error("a relative XDG_CACHE_HOME was accepted")
	}
}

func TestLookupAndVerify(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	p := Platform{"linux", "amd64"}
	putArtifact(t, c, "etcd", "3.7.3", p, map[string]string{"etcd": "etcd binary", "etcdctl": "etcdctl binary"})
	putArtifact(t, c, "kubelet", "1.37.2", p, map[string]string{"kubelet": "kubelet binary"})

	path, sum, err := c.Lookup("kubelet", "1.37.2", p, "kubelet")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(c.Root, "kubelet/1.37.2/linux-amd64/kubelet"); path != want {
		t.Errorf("path = %s, want %s", path, want)
	}
	// sha256("kubelet binary")
	if want, _, _ := HashFile(path); sum != want || len(sum) != 64 {
		t.Errorf("sha256 = %s, want %s", sum, want)
	}

	if _, _, err := c.Lookup("kubelet", "1.36.3", p, "kubelet"); !errors.Is(err, ErrNotCached) {
		t.Errorf("lookup of an absent version: %v, want ErrNotCached", err)
	}
	if _, _, err := c.Lookup("etcd", "3.7.3", p, "etcdutl"); err == nil {
		t.Error("lookup of a file the manifest does not list succeeded")
	}

	ms, err := c.Verify()
	if err != nil {
		t.Fatalf("verify of an intact cache: %v", err)
	}
	if len(ms) != 2 {
		t.Errorf("verify checked %d artifacts, want 2", len(ms))
	}

	// Flip one byte of one file: verify must fail and name that file only.
	bad := filepath.Join(c.Dir("etcd", "3.7.3", p), "etcdctl")
	data, _ := os.ReadFile(bad)
	data[3] ^= 0xff
	if err := os.WriteFile(bad, data, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = c.Verify()
	if err == nil {
		t.Fatal("verify passed with a corrupted file")
	}
	if !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("error does not name the corrupted file %s: %v", bad, err)
	}
	if strings.Contains(err.Error(), "/etcd:") || strings.Contains(err.Error(), "kubelet") {
		t.Errorf("error names intact files: %v", err)
	}
	if _, err := c.VerifyArtifact("kubelet", "1.37.2", p); err != nil {
		t.Errorf("intact artifact failed verification: %v", err)
	}

	// A truncated file is caught by size, also by Lookup.
	if err := os.WriteFile(bad, data[:2], 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Lookup("etcd", "3.7.3", p, "etcdctl"); err == nil || !strings.Contains(err.Error(), "size") {
		t.Errorf("lookup of a truncated file: %v", err)
	}
}

func TestListSkipsUnfinishedArtifacts(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	p := Platform{"linux", "amd64"}
	arm := Platform{"linux", "arm64"}
	putArtifact(t, c, "runc", "1.5.2", p, map[string]string{"runc": "r"})
	putArtifact(t, c, "cni", "1.9.1", arm, map[string]string{"bridge": "b", "loopback": "l"})
	// A folder with files but no manifest: an interrupted build.
	dir := c.Dir("containerd", "2.4.2", p)
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "containerd"), []byte("half"), 0o755)

	ms, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Component+" "+m.Version+" "+m.Platform().String())
	}
	if diff := cmp.Diff([]string{"cni 1.9.1 linux-arm64", "runc 1.5.2 linux-amd64"}, got); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if _, err := c.ReadManifest("containerd", "2.4.2", p); !errors.Is(err, ErrNotCached) {
		t.Errorf("unfinished artifact: %v, want ErrNotCached", err)
	}
	if ms[0].Size() != 2 {
		t.Errorf("cni size = %d, want 2", ms[0].Size())
	}

	if err := c.Invalidate("runc", "1.5.2", p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Lookup("runc", "1.5.2", p, "runc"); !errors.Is(err, ErrNotCached) {
		t.Errorf("invalidated artifact: %v, want ErrNotCached", err)
	}
}

func TestManifestMustMatchItsFolder(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	p := Platform{"linux", "amd64"}
	putArtifact(t, c, "kubelet", "1.37.2", p, map[string]string{"kubelet": "k"})
	// Copy the 1.37.2 manifest into the 1.36.3 folder: it must not be
	// taken for a 1.36.3 kubelet.
	data, _ := os.ReadFile(filepath.Join(c.Dir("kubelet", "1.37.2", p), ManifestName))
	os.MkdirAll(c.Dir("kubelet", "1.36.3", p), 0o755)
	os.WriteFile(filepath.Join(c.Dir("kubelet", "1.36.3", p), ManifestName), data, 0o644)
	if _, err := c.ReadManifest("kubelet", "1.36.3", p); err == nil || !strings.Contains(err.Error(), "describes kubelet 1.37.2") {
		t.Errorf("misplaced manifest: %v", err)
	}
}

func TestArtifactsTable(t *testing.T) {
	all := AllArtifacts()
	seen := map[string]bool{}
	for _, a := range all {
		key := a.Component + "@" + a.Version
		if seen[key] {
			t.Errorf("%s listed twice", key)
		}
		seen[key] = true
		if len(a.Files) == 0 {
			t.Errorf("%s has no files", key)
		}
	}
	for _, r := range Releases() {
		for _, c := range append(KubernetesBinaries(), Etcd, Containerd, Runc, CNI, PauseImage, EchoImage) {
			v, _ := r.Version(c)
			if _, err := FindArtifact(c, v); err != nil {
				t.Errorf("release %s: %v", r.Kubernetes, err)
			}
		}
	}
	a, err := FindArtifact(EchoImage, "v1")
	if err != nil || a.Image != "localhost/clusterctl-echo:v1" {
		t.Errorf("echo image = %+v, %v", a, err)
	}
	if a, err := FindArtifact(Kubelet, "v1.37.2"); err != nil || a.Version != "1.37.2" {
		t.Errorf("kubelet v1.37.2 = %+v, %v", a, err)
	}
	if _, err := FindArtifact(Kubelet, "1.35.0"); err == nil {
		t.Error("an unpinned version was found")
	}
	if all[0].Component != KubeAPIServer || all[0].Version != Latest().Kubernetes {
		t.Errorf("first artifact = %s, want the newest kube-apiserver", all[0].ID())
	}
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]Platform{"linux/amd64": {"linux", "amd64"}, "linux-arm64": {"linux", "arm64"}} {
		got, err := ParsePlatform(in)
		if err != nil || got != want {
			t.Errorf("ParsePlatform(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "linux", "linux/", "/amd64"} {
		if _, err := ParsePlatform(in); err == nil {
			t.Errorf("ParsePlatform(%q) succeeded", in)
		}
	}
}

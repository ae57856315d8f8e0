package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/clusterctl/clusterctl/bundle"
)

// fakeCache points the default cache at a temporary folder holding one
// cached kubelet and returns the kubelet's path.
func fakeBundleCache(t *testing.T) string {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	c, err := bundle.DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	p := bundle.HostPlatform()
	dir := c.Dir(bundle.Kubelet, "1.37.2", p)
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, "kubelet")
	os.WriteFile(path, []byte("not really a kubelet"), 0o755)
	if _, err := c.Commit(bundle.Manifest{Component: bundle.Kubelet, Version: "1.37.2", OS: p.OS, Arch: p.Arch, Source: "test"}, []string{"kubelet"}); err != nil {
		t.Fatal(err)
	}
	return path
}

func runBundleCmd(args ...string) (string, error) {
	var out bytes.Buffer
	err := Run(context.Background(), args, &out, &out)
	return out.String(), err
}

func TestBundleListAndVerify(t *testing.T) {
	path := fakeBundleCache(t)
	out, err := runBundleCmd("bundle", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "kubelet    1.37.2") && !strings.Contains(out, "kubelet  1.37.2") {
		t.Errorf("list does not show the cached kubelet:\n%s", out)
	}
	if !strings.Contains(out, "1 artifacts") || !strings.Contains(out, "not cached for") || !strings.Contains(out, "kube-apiserver v1.37.2") {
		t.Errorf("list does not sum up or name what is missing:\n%s", out)
	}

	out, err = runBundleCmd("bundle", "verify")
	if err != nil || !strings.Contains(out, "1 artifacts, 1 files: all match") {
		t.Fatalf("verify of an intact cache: %v\n%s", err, out)
	}

	data, _ := os.ReadFile(path)
	data[0] ^= 0x20
	os.WriteFile(path, data, 0o755)
	_, err = runBundleCmd("bundle", "verify")
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("verify of a corrupted kubelet: %v, want an error naming %s", err, path)
	}
}

func TestBundleSelection(t *testing.T) {
	fakeBundleCache(t)
	for _, args := range [][]string{
		{"bundle", "build", "--only", "kube-frobnicator"},
		{"bundle", "build", "--kubernetes-version", "1.20.0"},
		{"bundle", "fetch", "--platform", "linux"},
	} {
		if _, err := runBundleCmd(args...); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
	sel := selection{kubernetes: []string{"v1.36.3"}, only: []string{"kubernetes", "etcd"}}
	arts, err := sel.artifacts()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range arts {
		ids = append(ids, a.ID())
	}
	want := "kube-apiserver v1.36.3,kube-controller-manager v1.36.3,kube-scheduler v1.36.3,kubelet v1.36.3,kube-proxy v1.36.3,kubectl v1.36.3,etcd v3.6.16"
	if got := strings.Join(ids, ","); got != want {
		t.Errorf("selection = %s\nwant        %s", got, want)
	}
}

func TestBundleFetchRefusesUnpinnedChecksum(t *testing.T) {
	fakeBundleCache(t)
	out, err := runBundleCmd("bundle", "fetch", "--kubernetes-version", "1.36.3", "--only", "kubectl")
	if err == nil || !strings.Contains(err.Error(), "no pinned sha256") || !strings.Contains(err.Error(), "--sha256 kubectl=SUM") {
		t.Errorf("fetch without a pinned sha256: %v\n%s", err, out)
	}
	// Already cached: reused without any download.
	out, err = runBundleCmd("bundle", "fetch", "--kubernetes-version", "1.37.2", "--only", "kubelet")
	if err != nil || !strings.Contains(out, "reusing kubelet v1.37.2") {
		t.Errorf("fetch of a cached kubelet: %v\n%s", err, out)
	}
}

package build_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
)

// versionCheck is how one cached file tells its version: run it with args
// (and env) and find the version with re's first group.
type versionCheck struct {
	args []string
	env  []string
	re   string
	want func(version string) string // from the pinned version ("1.37.2")
}

func withV(v string) string    { return "v" + v }
func withoutV(v string) string { return v }

var versionChecks = map[string]versionCheck{
	bundle.KubeAPIServer:         {args: []string{"--version"}, re: `(?m)^Kubernetes (\S+)$`, want: withV},
	bundle.KubeControllerManager: {args: []string{"--version"}, re: `(?m)^Kubernetes (\S+)$`, want: withV},
	bundle.KubeScheduler:         {args: []string{"--version"}, re: `(?m)^Kubernetes (\S+)$`, want: withV},
	bundle.Kubelet:               {args: []string{"--version"}, re: `(?m)^Kubernetes (\S+)$`, want: withV},
	bundle.KubeProxy:             {args: []string{"--version"}, re: `(?m)^Kubernetes (\S+)$`, want: withV},
	bundle.Kubectl:               {args: []string{"version", "--client"}, re: `(?m)^Client Version: (\S+)$`, want: withV},
	"etcd":                       {args: []string{"--version"}, re: `(?m)^etcd Version: (\S+)$`, want: withoutV},
	"etcdctl":                    {args: []string{"version"}, re: `(?m)^etcdctl version: (\S+)$`, want: withoutV},
	"containerd":                 {args: []string{"--version"}, re: `(?m)^containerd \S+ (\S+)`, want: withV},
	"containerd-shim-runc-v2":    {args: []string{"-v"}, re: `(?m)^\s*Version:\s+(\S+)$`, want: withV},
	"ctr":                        {args: []string{"--version"}, re: `(?m)^ctr \S+ (\S+)`, want: withV},
	"runc":                       {args: []string{"--version"}, re: `(?m)^runc version (\S+)$`, want: withoutV},
	// A CNI plugin run with CNI_COMMAND empty prints "CNI bridge plugin
	// v1.9.1" and the protocol versions it supports.
	"bridge":     {re: `(?m)^CNI bridge plugin (\S+)$`, want: withV},
	"host-local": {re: `(?m)^CNI host-local plugin (\S+)$`, want: withV},
	"loopback":   {re: `(?m)^CNI loopback plugin (\S+)$`, want: withV},
	"portmap":    {re: `(?m)^CNI portmap plugin (\S+)$`, want: withV},
}

// TestCachedArtifactsReportPinnedVersions runs every cached binary of every
// pinned artifact with its version flag and checks it reports exactly the
// pinned version, and checks each image archive carries its reference. With
// no cache it skips, unless CLUSTERCTL_REQUIRE_BUNDLE=1 (set by `make check`
// after `make bundle`).
func TestCachedArtifactsReportPinnedVersions(t *testing.T) {
	cache, err := bundle.DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	require := os.Getenv("CLUSTERCTL_REQUIRE_BUNDLE") == "1"
	p := bundle.HostPlatform()
	for _, a := range bundle.AllArtifacts() {
		t.Run(a.Component+"-"+a.Version, func(t *testing.T) {
			m, err := cache.ReadManifest(a.Component, a.Version, p)
			if errors.Is(err, bundle.ErrNotCached) && !require {
				t.Skipf("%s is not cached for %s; run `make bundle` (CLUSTERCTL_REQUIRE_BUNDLE=1 turns this into a failure)", a.ID(), p)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Files) != len(a.Files) {
				t.Errorf("manifest lists %d files, the table %d", len(m.Files), len(a.Files))
			}
			for _, file := range a.Files {
				path, _, err := cache.Lookup(a.Component, a.Version, p, file)
				if err != nil {
					t.Error(err)
					continue
				}
				if a.Image != "" {
					checkImageArchive(t, path, a.Image)
					continue
				}
				checkVersion(t, path, file, a.Version)
			}
		})
	}
}

func checkVersion(t *testing.T, path, file, pinned string) {
	t.Helper()
	c, ok := versionChecks[file]
	if !ok {
		t.Errorf("%s: no version check for this file", file)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, c.args...)
	cmd.Env = append(append(os.Environ(), "CNI_COMMAND="), c.env...)
	// kubectl must not reach for a cluster or a kubeconfig here.
	cmd.Env = append(cmd.Env, "KUBECONFIG="+filepath.Join(os.TempDir(), "clusterctl-no-such-kubeconfig"))
	out, err := cmd.CombinedOutput()
	m := regexp.MustCompile(c.re).FindSubmatch(out)
	if m == nil {
		t.Errorf("%s %s: no version in the output (%v):\n%s", file, strings.Join(c.args, " "), err, out)
		return
	}
	if got, want := string(m[1]), c.want(pinned); got != want {
		t.Errorf("%s reports version %s, pinned %s; output:\n%s", file, got, want, out)
	}
}

func checkImageArchive(t *testing.T, path, ref string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no manifest.json: %v", path, err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != ref {
			t.Errorf("%s names %v, want [%s]", path, m, ref)
		}
		return
	}
}

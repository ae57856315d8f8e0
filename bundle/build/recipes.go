package build

import (
	"fmt"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
)

// goRecipe says how to build an artifact's binaries from one upstream Go
// module at one tag.
type goRecipe struct {
	name     string   // workspace folder prefix, e.g. kubernetes
	modules  []string // upstream modules the workspace requires, e.g. k8s.io/kubernetes
	version  string   // their tag, e.g. v1.37.2
	binaries []goBinary
	// localVersion names the published version of a module that upstream's
	// go.mod replaces by a folder of its own tree. ok false: the recipe does
	// not know the module (an error); version "" with ok: drop the replace.
	localVersion func(modPath string) (version string, ok bool)
	// image, when set, makes the artifact's one file an image archive
	// holding the recipe's one binary, instead of the binary itself.
	image *imageRecipe
}

// imageRecipe is the one-layer image a binary is put in (package images).
type imageRecipe struct {
	binary string   // its name in the image: /<binary>, the entrypoint
	ports  []string // exposed ports, e.g. "53/udp"
}

// goBinary is one `go build` of the recipe.
type goBinary struct {
	file string // file name in the artifact folder
	pkg  string // main package to build
	cgo  bool
	tags []string
	// ldflags are added after "-s -w", e.g. for static cgo linking.
	ldflags []string
	// stamp returns the -X flags that set the version variables; tagTime is
	// when the tag was made (the proxy's .info Time), used as build date so
	// that rebuilding gives the same bytes.
	stamp func(tagTime time.Time) []string
}

// goRecipeFor returns how to build a Go artifact, or nil for artifacts that
// are not built with `go build` (the images).
func goRecipeFor(a bundle.Artifact) (*goRecipe, error) {
	v := "v" + a.Version
	switch a.Component {
	case bundle.KubeAPIServer, bundle.KubeControllerManager, bundle.KubeScheduler, bundle.Kubelet, bundle.KubeProxy, bundle.Kubectl:
		return kubernetesRecipe(a.Component, v)
	case bundle.Etcd:
		return etcdRecipe(v), nil
	case bundle.Containerd:
		return containerdRecipe(v), nil
	case bundle.Runc:
		return runcRecipe(v), nil
	case bundle.CNI:
		return cniRecipe(v), nil
	case bundle.CoreDNS:
		return coreDNSRecipe(v), nil
	case bundle.MetricsServer:
		return &goRecipe{
			name: "metrics-server", modules: []string{"sigs.k8s.io/metrics-server"}, version: v,
			binaries: []goBinary{{file: "metrics-server.tar", pkg: "sigs.k8s.io/metrics-server/cmd/metrics-server"}},
			image:    &imageRecipe{binary: "metrics-server", ports: []string{"10250/tcp"}},
		}, nil
	case bundle.PauseImage, bundle.EchoImage:
		return nil, nil
	}
	return nil, fmt.Errorf("no build recipe for %s", a.ID())
}

// kubernetesRecipe builds one binary of k8s.io/kubernetes. The staging
// modules (k8s.io/api, client-go, ...) that the tag's go.mod replaces by
// ./staging/src/k8s.io/X are published as k8s.io/X v0.MINOR.PATCH.
func kubernetesRecipe(binary, version string) (*goRecipe, error) {
	major, minor, patch, ok := splitSemver(version)
	if !ok || major != "1" {
		return nil, fmt.Errorf("kubernetes version %s: want v1.MINOR.PATCH", version)
	}
	staging := "v0." + minor + "." + patch
	stamp := func(tagTime time.Time) []string {
		var xs []string
		// component-base carries the version every server and kubectl print;
		// client-go's copy is what the client libraries report.
		for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
			xs = append(xs,
				pkg+".gitVersion="+version,
				pkg+".gitMajor="+major,
				pkg+".gitMinor="+minor,
				pkg+".gitTreeState=clean",
				pkg+".buildDate="+tagTime.UTC().Format(time.RFC3339),
			)
		}
		return xs
	}
	return &goRecipe{
		name:    "kubernetes",
		modules: []string{"k8s.io/kubernetes"},
		version: version,
		binaries: []goBinary{{
			file: binary,
			pkg:  "k8s.io/kubernetes/cmd/" + binary,
			// Kubernetes' own release build uses these tags: selinux for
			// the kubelet's labeling, notest and grpcnotrace to leave test
			// and tracing code out.
			tags:  []string{"selinux", "notest", "grpcnotrace"},
			stamp: stamp,
		}},
		localVersion: func(mod string) (string, bool) {
			return staging, strings.HasPrefix(mod, "k8s.io/")
		},
	}, nil
}

// etcdRecipe builds etcd (server/v3's main package, which runs etcdmain) and
// etcdctl (etcdctl/v3); etcd's root module is not published. Their version is
// a constant in go.etcd.io/etcd/api/v3/version; only the git SHA would be
// stamped, and the module proxy does not know it.
func etcdRecipe(version string) *goRecipe {
	same := func(mod string) (string, bool) {
		switch {
		case mod == "go.etcd.io/etcd" || mod == "go.etcd.io/tests/v3":
			// etcd's go.mod points these at a FORBIDDEN_DEPENDENCY
			// folder so that nothing imports them; nothing does.
			return "", true
		case strings.HasPrefix(mod, "go.etcd.io/etcd/"):
			return version, true
		}
		return "", false
	}
	return &goRecipe{
		name:    "etcd",
		modules: []string{"go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/etcdctl/v3"},
		version: version,
		binaries: []goBinary{
			{file: "etcd", pkg: "go.etcd.io/etcd/server/v3"},
			{file: "etcdctl", pkg: "go.etcd.io/etcd/etcdctl/v3"},
		},
		localVersion: same,
	}
}

// containerdRecipe builds containerd 2.x, its runc shim and ctr, with the
// version stamped as containerd's own Makefile does.
func containerdRecipe(version string) *goRecipe {
	stamp := func(time.Time) []string {
		// Revision (the git commit) is not known from the module proxy.
		return []string{"github.com/containerd/containerd/v2/version.Version=" + version}
	}
	// containerd's Makefile tags; without cgo the btrfs snapshotter drops
	// out by itself (overlayfs and native are what clusterctl's hosts use).
	tags := []string{"urfave_cli_no_docs"}
	shimTags := []string{"urfave_cli_no_docs", "no_grpc"}
	return &goRecipe{
		name:    "containerd",
		modules: []string{"github.com/containerd/containerd/v2"},
		version: version,
		binaries: []goBinary{
			{file: "containerd", pkg: "github.com/containerd/containerd/v2/cmd/containerd", tags: tags, stamp: stamp},
			{file: "containerd-shim-runc-v2", pkg: "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2", tags: shimTags, stamp: stamp},
			{file: "ctr", pkg: "github.com/containerd/containerd/v2/cmd/ctr", tags: tags, stamp: stamp},
		},
	}
}

// runcRecipe builds runc with seccomp: cgo against Debian's libseccomp,
// linked statically (as upstream's release binary) so that hosts need no
// libseccomp of their own. Without seccomp every pod fails with "seccomp not
// supported". runc embeds its VERSION file, so there is nothing to stamp;
// libpathrs (a Rust library Debian does not ship) is left out, as upstream
// allows.
func runcRecipe(version string) *goRecipe {
	return &goRecipe{
		name:    "runc",
		modules: []string{"github.com/opencontainers/runc"},
		version: version,
		binaries: []goBinary{{
			file:    "runc",
			pkg:     "github.com/opencontainers/runc",
			cgo:     true,
			tags:    []string{"seccomp", "urfave_cli_no_docs", "netgo", "osusergo"},
			ldflags: []string{"-linkmode", "external", "-extldflags", "-static"},
		}},
	}
}

// cniRecipe builds the CNI plugins clusterctl configures. Each prints
// "CNI <name> plugin v1.9.1" when run without CNI_COMMAND.
func cniRecipe(version string) *goRecipe {
	r := &goRecipe{name: "cni-plugins", modules: []string{"github.com/containernetworking/plugins"}, version: version}
	dirs := map[string]string{"bridge": "main", "host-local": "ipam", "loopback": "main", "portmap": "meta"}
	for _, p := range bundle.CNIPlugins() {
		r.binaries = append(r.binaries, goBinary{
			file: p,
			pkg:  "github.com/containernetworking/plugins/plugins/" + dirs[p] + "/" + p,
			stamp: func(time.Time) []string {
				return []string{"github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=" + version}
			},
		})
	}
	return r
}

// coreDNSRecipe builds the coredns binary (its main package is the module
// root, with the plugins of upstream's plugin.cfg) into an image.
func coreDNSRecipe(version string) *goRecipe {
	return &goRecipe{
		name: "coredns", modules: []string{"github.com/coredns/coredns"}, version: version,
		binaries: []goBinary{{file: "coredns.tar", pkg: "github.com/coredns/coredns"}},
		image:    &imageRecipe{binary: "coredns", ports: []string{"53/udp", "53/tcp", "9153/tcp"}},
	}
}

// splitSemver splits "v1.37.2" into "1", "37", "2".
func splitSemver(v string) (major, minor, patch string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) != 3 {
		return "", "", "", false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return "", "", "", false
		}
	}
	return parts[0], parts[1], parts[2], true
}

package fetch

import (
	"fmt"
	"strings"

	"github.com/clusterctl/clusterctl/bundle"
)

// Format is how a download holds the artifact's files.
type Format string

const (
	Raw   Format = "raw"    // the download is the single file itself
	TarGz Format = "tar.gz" // a gzip'd tar; Members maps artifact files to paths inside
)

// Source is where one artifact is published upstream.
type Source struct {
	Component string
	Version   string // as in the bundle table, no leading "v"
	// URL is a template: {version} (no "v"), {os}, {arch}.
	URL    string
	Format Format
	// Members maps each artifact file to its path inside the archive
	// (a template like URL); unused for Raw.
	Members map[string]string
	// SHA256 of the download per platform ("linux/amd64"). Empty when
	// nobody has pinned it yet: the fetcher then refuses to download
	// rather than trust an unchecked file.
	SHA256 map[string]string
}

// Expand fills the URL template for a platform.
func (s Source) Expand(tmpl string, p bundle.Platform) string {
	return strings.NewReplacer("{version}", s.Version, "{os}", p.OS, "{arch}", p.Arch).Replace(tmpl)
}

// Sum is the pinned sha256 for a platform, or "".
func (s Source) Sum(p bundle.Platform) string {
	return s.SHA256[p.OS+"/"+p.Arch]
}

// Upstream lists where the official release files of every pinned artifact
// are published. The two images have no upstream: they are clusterctl's own
// and are always assembled locally (`bundle build --only pause-image,echo-image`).
//
// The sha256 sums are left empty: this table was written on a machine that
// cannot reach these hosts, and a sum copied from anywhere but the file
// itself would be a guess. Whoever first fetches with --sha256 on a machine
// with internet access (and checks the sum against upstream's published one)
// should pin it here.
func Upstream() []Source {
	var out []Source
	for _, a := range bundle.AllArtifacts() {
		s, ok := upstreamFor(a)
		if ok {
			out = append(out, s)
		}
	}
	return out
}

func upstreamFor(a bundle.Artifact) (Source, bool) {
	s := Source{Component: a.Component, Version: a.Version, SHA256: map[string]string{}}
	switch a.Component {
	case bundle.KubeAPIServer, bundle.KubeControllerManager, bundle.KubeScheduler, bundle.Kubelet, bundle.KubeProxy, bundle.Kubectl:
		s.URL = "https://dl.k8s.io/release/v{version}/bin/{os}/{arch}/" + a.Component
		s.Format = Raw
	case bundle.Etcd:
		s.URL = "https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-{os}-{arch}.tar.gz"
		s.Format = TarGz
		s.Members = map[string]string{"etcd": "etcd-v{version}-{os}-{arch}/etcd", "etcdctl": "etcd-v{version}-{os}-{arch}/etcdctl"}
	case bundle.Containerd:
		s.URL = "https://github.com/containerd/containerd/releases/download/v{version}/containerd-{version}-{os}-{arch}.tar.gz"
		s.Format = TarGz
		s.Members = map[string]string{"containerd": "bin/containerd", "containerd-shim-runc-v2": "bin/containerd-shim-runc-v2", "ctr": "bin/ctr"}
	case bundle.Runc:
		s.URL = "https://github.com/opencontainers/runc/releases/download/v{version}/runc.{arch}"
		s.Format = Raw
	case bundle.CNI:
		s.URL = "https://github.com/containernetworking/plugins/releases/download/v{version}/cni-plugins-{os}-{arch}-v{version}.tgz"
		s.Format = TarGz
		s.Members = map[string]string{}
		for _, p := range bundle.CNIPlugins() {
			s.Members[p] = "./" + p
		}
	default:
		return Source{}, false
	}
	return s, true
}

// SourceFor finds the source of an artifact in sources.
func SourceFor(sources []Source, a bundle.Artifact) (Source, error) {
	for _, s := range sources {
		if s.Component == a.Component && s.Version == a.Version {
			return s, nil
		}
	}
	return Source{}, fmt.Errorf("%s has no download source; use `clusterctl bundle build --only %s`", a.ID(), a.Component)
}

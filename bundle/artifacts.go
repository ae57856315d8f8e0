package bundle

import (
	"fmt"
	"runtime"
	"strings"
)

// Image references of the bundled images, as containerd knows them after an
// offline import. Pods, kubelet's --pod-infra-container-image and the tests
// use exactly these names.
const (
	PauseImageRepo = "localhost/clusterctl-pause"
	EchoImageRepo  = "localhost/clusterctl-echo"
	CoreDNSRepo    = "localhost/clusterctl-coredns"
	MetricsRepo    = "localhost/clusterctl-metrics-server"
	// EchoPort is the port the echo test image listens on.
	EchoPort = 8080
)

// CoreDNSImage is the reference of the bundled CoreDNS image at version.
func CoreDNSImage(version string) string { return CoreDNSRepo + ":v" + version }

// MetricsServerImage is the reference of the bundled metrics-server image.
func MetricsServerImage(version string) string { return MetricsRepo + ":v" + version }

// Artifact is one cache entry: a component at a version, made of one or more
// files that are built or downloaded together.
type Artifact struct {
	Component string   // cache folder name: kube-apiserver, etcd, cni, pause-image, ...
	Version   string   // as pinned in Releases: no leading "v" (the echo tag is "v1")
	Files     []string // file names inside the artifact's folder
	Image     string   // for image artifacts: the reference embedded in the archive
}

// ID names the artifact in messages: "kube-apiserver v1.37.2".
func (a Artifact) ID() string {
	v := a.Version
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return a.Component + " " + v
}

// Platform is an os/arch pair; artifacts are cached per platform.
type Platform struct {
	OS   string
	Arch string
}

// HostPlatform is the platform this binary runs on.
func HostPlatform() Platform { return Platform{OS: runtime.GOOS, Arch: runtime.GOARCH} }

// String is the cache folder name: "linux-amd64".
func (p Platform) String() string { return p.OS + "-" + p.Arch }

// ParsePlatform accepts "linux/amd64" or "linux-amd64".
func ParsePlatform(s string) (Platform, error) {
	sep := strings.IndexAny(s, "/-")
	if sep <= 0 || sep == len(s)-1 {
		return Platform{}, fmt.Errorf("platform %q: want OS/ARCH such as linux/amd64", s)
	}
	return Platform{OS: s[:sep], Arch: s[sep+1:]}, nil
}

// KubernetesBinaries are the binaries built from k8s.io/kubernetes, each its
// own artifact so that a host gets only what its role needs.
func KubernetesBinaries() []string {
	return []string{KubeAPIServer, KubeControllerManager, KubeScheduler, Kubelet, KubeProxy, Kubectl}
}

// CNIPlugins are the plugins of github.com/containernetworking/plugins that
// the bundle carries.
func CNIPlugins() []string { return []string{"bridge", "host-local", "loopback", "portmap"} }

// Artifacts lists every artifact of the release, the long Kubernetes builds
// first.
func (r Release) Artifacts() []Artifact {
	var out []Artifact
	for _, b := range KubernetesBinaries() {
		out = append(out, Artifact{Component: b, Version: r.Kubernetes, Files: []string{b}})
	}
	return append(out,
		Artifact{Component: Etcd, Version: r.Etcd, Files: []string{"etcd", "etcdctl"}},
		Artifact{Component: Containerd, Version: r.Containerd, Files: []string{"containerd", "containerd-shim-runc-v2", "ctr"}},
		Artifact{Component: Runc, Version: r.Runc, Files: []string{"runc"}},
		Artifact{Component: CNI, Version: r.CNIPlugins, Files: CNIPlugins()},
		Artifact{Component: PauseImage, Version: r.Pause, Files: []string{"pause.tar"}, Image: PauseImageRepo + ":" + r.Pause},
		Artifact{Component: EchoImage, Version: r.Echo, Files: []string{"echo.tar"}, Image: EchoImageRepo + ":" + r.Echo},
		Artifact{Component: CoreDNS, Version: r.CoreDNS, Files: []string{"coredns.tar"}, Image: CoreDNSImage(r.CoreDNS)},
		Artifact{Component: MetricsServer, Version: r.MetricsServer, Files: []string{"metrics-server.tar"}, Image: MetricsServerImage(r.MetricsServer)},
	)
}

// AllArtifacts lists the artifacts of every supported release once each,
// newest release first: the newest is what a fresh cluster installs.
func AllArtifacts() []Artifact {
	rs := Releases()
	seen := map[string]bool{}
	var out []Artifact
	for i := len(rs) - 1; i >= 0; i-- {
		for _, a := range rs[i].Artifacts() {
			key := a.Component + "@" + a.Version
			if !seen[key] {
				seen[key] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// FindArtifact returns the pinned artifact for component at version.
func FindArtifact(component, version string) (Artifact, error) {
	version = normalizeVersion(component, version)
	for _, a := range AllArtifacts() {
		if a.Component == component && a.Version == version {
			return a, nil
		}
	}
	return Artifact{}, fmt.Errorf("%s %s is not pinned in the bundle", component, version)
}

// normalizeVersion drops a leading "v" except where the pinned tag has one.
func normalizeVersion(component, version string) string {
	if component == EchoImage {
		return version
	}
	return strings.TrimPrefix(version, "v")
}

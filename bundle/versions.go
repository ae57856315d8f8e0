// Package bundle knows which upstream versions clusterctl installs and where
// their artifacts live in the local cache. This file is the one place where
// versions are pinned.
package bundle

import (
	"fmt"
	"sort"
	"strings"
)

// Component names, as used in specs, state and the artifact cache.
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	Kubelet               = "kubelet"
	KubeProxy             = "kube-proxy"
	Kubectl               = "kubectl"
	Containerd            = "containerd"
	Runc                  = "runc"
	CNI                   = "cni"
	PauseImage            = "pause-image"
	EchoImage             = "echo-image"
	// CoreDNS is the cluster DNS add-on; its artifact is an image archive of
	// the coredns binary built from github.com/coredns/coredns.
	CoreDNS = "coredns"
	// MetricsServer serves the resource metrics API (kubectl top) through
	// the aggregation layer; its artifact is an image archive too.
	MetricsServer = "metrics-server"
)

// Release is one supported Kubernetes release and the versions of every
// component that ships with it. Versions carry no leading "v".
type Release struct {
	Kubernetes string // kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl
	Etcd       string
	Containerd string
	Runc       string
	CNIPlugins string // bridge, host-local, loopback, portmap
	Pause      string // tag of the bundled pause image
	Echo       string // tag of the bundled test image localhost/clusterctl-echo
	// CoreDNS is the version kubeadm pins for the release's minor
	// (cmd/kubeadm/app/constants CoreDNSVersion at the release's tag).
	CoreDNS string
	// MetricsServer is sigs.k8s.io/metrics-server's release.
	MetricsServer string
}

// Releases returns the supported releases, oldest first. Two Kubernetes
// minors are pinned so that upgrades can be tested end to end.
func Releases() []Release {
	return []Release{
		{Kubernetes: "1.36.3", Etcd: "3.6.16", Containerd: "2.4.2", Runc: "1.5.2", CNIPlugins: "1.9.1", Pause: "3.10", Echo: "v1", CoreDNS: "1.14.2", MetricsServer: "0.8.0"},
		{Kubernetes: "1.37.2", Etcd: "3.7.3", Containerd: "2.4.2", Runc: "1.5.2", CNIPlugins: "1.9.1", Pause: "3.10", Echo: "v1", CoreDNS: "1.14.6", MetricsServer: "0.8.0"},
	}
}

// Latest returns the newest supported release.
func Latest() Release {
	rs := Releases()
	return rs[len(rs)-1]
}

// ReleaseFor returns the release pinned for a Kubernetes version such as
// "1.37.2" (a leading "v" is accepted).
func ReleaseFor(kubernetesVersion string) (Release, error) {
	v := strings.TrimPrefix(kubernetesVersion, "v")
	var known []string
	for _, r := range Releases() {
		if r.Kubernetes == v {
			return r, nil
		}
		known = append(known, r.Kubernetes)
	}
	sort.Strings(known)
	return Release{}, fmt.Errorf("kubernetes version %q is not in the bundle (supported: %s)", kubernetesVersion, strings.Join(known, ", "))
}

// Version returns the version this release pins for a spec component name
// (etcd, kube-apiserver, ..., containerd, cni). ok is false for an unknown
// component.
func (r Release) Version(component string) (version string, ok bool) {
	switch component {
	case KubeAPIServer, KubeControllerManager, KubeScheduler, Kubelet, KubeProxy, Kubectl:
		return r.Kubernetes, true
	case Etcd:
		return r.Etcd, true
	case Containerd:
		return r.Containerd, true
	case Runc:
		return r.Runc, true
	case CNI:
		return r.CNIPlugins, true
	case PauseImage:
		return r.Pause, true
	case EchoImage:
		return r.Echo, true
	case CoreDNS:
		return r.CoreDNS, true
	case MetricsServer:
		return r.MetricsServer, true
	}
	return "", false
}

// Addons lists the cluster add-ons a spec may configure with an
// `addon "NAME"` block.
func Addons() []string { return []string{CoreDNS, MetricsServer} }

// SpecComponents lists the component names a spec may configure with a
// `component "NAME"` block, in upgrade order.
func SpecComponents() []string {
	return []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, Containerd, CNI, Kubelet, KubeProxy}
}

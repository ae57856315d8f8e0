package components

import (
	"fmt"
	"path"
	"slices"
	"strconv"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/internal/filesum"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
)

// PKI gives components the bytes of certificates, keys and kubeconfigs.
type PKI interface {
	// File returns a certificate or key by its path relative to the PKI
	// root ("apiserver.crt", "etcd/ca.crt").
	File(rel string) ([]byte, error)
	// Kubeconfig returns a rendered kubeconfig by its table name.
	Kubeconfig(name string) ([]byte, error)
}

// Input is everything needed to compute the desired state of a cluster.
type Input struct {
	Cluster *spec.Cluster
	PKI     PKI
	Cache   *bundle.Cache
	// Platform of each host (from its facts); hosts not listed are
	// assumed to match the workstation.
	Platforms map[string]bundle.Platform
	// Lab holds the lab marker of hosts that are clusterctl lab hosts.
	Lab map[string]LabHost
	// Facts of each host: cgroup version, init system, capabilities, swap
	// and tools decide how the node components are configured.
	Facts map[string]provision.Facts
	// Installed is what each host's installed.json says; allocations made
	// earlier (a node's pod CIDR) are kept from it.
	Installed map[string]Installed
	// Sums, when set, remembers the digests of the spec's image archives
	// (read once per run, and again only when they change); nil reads them
	// every time.
	Sums *filesum.Cache
}

// LabHost is what a lab host's /etc/clusterctl/lab-host.json says. Only
// lab hosts have it; they need a kubelet cgroup root of their own because
// several share one kernel.
type LabHost struct {
	Lab        string `json:"lab"`
	Host       string `json:"host"`
	CgroupRoot string `json:"cgroup_root"`
	Address    string `json:"address"`
}

func (in Input) platform(host string) bundle.Platform {
	if p, ok := in.Platforms[host]; ok {
		return p
	}
	return bundle.HostPlatform()
}

// version returns the version the spec wants for a component.
func (in Input) version(component string) string {
	c, ok := in.Cluster.Component(component)
	if !ok {
		v, _ := in.Cluster.Release().Version(component)
		return v
	}
	return c.Version
}

func (in Input) extraArgs(component string) map[string]string {
	c, ok := in.Cluster.Component(component)
	if !ok {
		return nil
	}
	return c.ExtraArgs
}

// pkiFiles returns the named PKI files (relative paths) as shared files at
// their on-host paths. Everything under /etc/kubernetes/pki is root's and
// 0600, certificates too: only root-run components read them (etcd reads
// its own copies), and CIS 1.1.20 and 4.1.7 ask for it. Keys and the
// encryption keyring are sensitive.
func (in Input) pkiFiles(rels ...string) ([]File, error) {
	var out []File
	for _, rel := range rels {
		data, err := in.PKI.File(rel)
		if err != nil {
			return nil, fmt.Errorf("pki %s: %w", rel, err)
		}
		f := File{Path: pki.HostPath(rel), Data: data, Mode: 0o600}
		if path.Ext(rel) == ".key" || rel == pki.KeyringFile {
			f.Sensitive = true
		}
		out = append(out, f)
	}
	return out, nil
}

func (in Input) kubeconfigFile(name, hostPath string) (File, error) {
	data, err := in.PKI.Kubeconfig(name)
	if err != nil {
		return File{}, fmt.Errorf("kubeconfig %s: %w", name, err)
	}
	return File{Path: hostPath, Data: data, Mode: 0o600, Sensitive: true}, nil
}

// mergeArgs renders flags as "--name=value" sorted by name, with extra
// args from the spec overriding or adding. An extra arg with an empty value
// removes a default flag.
func mergeArgs(defaults map[string]string, extra map[string]string) []string {
	all := map[string]string{}
	for k, v := range defaults {
		all[k] = v
	}
	for k, v := range extra {
		if v == "" {
			delete(all, k)
			continue
		}
		all[k] = v
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, "--"+k+"="+all[k])
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// Package spec turns a folder of HCL files into a typed, validated Cluster.
//
// Load reads every *.hcl file of a folder (sorted by name) as one merged
// spec, resolves variables and locals, applies defaults and validates the
// result. Problems come back as hcl.Diagnostics with source ranges; the
// caller renders them. A Cluster is immutable: its fields are unexported and
// its accessors return copies.
package spec

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Host roles.
const (
	RoleControlPlane = "control-plane"
	RoleEtcd         = "etcd"
	RoleWorker       = "worker"
)

// Host key policies for SSH.
const (
	HostKeyStrict    = "strict"     // the host key must already be in known_hosts
	HostKeyAcceptNew = "accept-new" // unknown hosts are added on first contact; changed keys are refused
)

// Cluster is a decoded, validated spec.
type Cluster struct {
	name              string
	kubernetesVersion string
	release           bundle.Release
	podCIDR           netip.Prefix
	serviceCIDR       netip.Prefix
	clusterDNS        netip.Addr
	apiEndpoint       string
	ssh               SSH
	hosts             []Host
	components        []Component
	addons            []Addon
	images            []Image
	registries        []Registry
	artifacts         Artifacts
	upgrade           UpgradePolicy
	security          *Security // nil: defaults (security.go)
	variables         []Variable
	files             []string
	declRange         hcl.Range
}

// Name is the cluster's label: `cluster "NAME" {}`.
func (c *Cluster) Name() string { return c.name }

// KubernetesVersion is the kubernetes_version as written, without a leading "v".
func (c *Cluster) KubernetesVersion() string { return c.kubernetesVersion }

// Release is the bundle release of KubernetesVersion: the versions every
// component defaults to.
func (c *Cluster) Release() bundle.Release { return c.release }

// PodCIDR is the range pod addresses come from; each node gets a slice of it.
func (c *Cluster) PodCIDR() netip.Prefix { return c.podCIDR }

// ServiceCIDR is the range of Service cluster IPs.
func (c *Cluster) ServiceCIDR() netip.Prefix { return c.serviceCIDR }

// ClusterDNS is the cluster IP of the DNS Service (the 10th address of
// ServiceCIDR unless set).
func (c *Cluster) ClusterDNS() netip.Addr { return c.clusterDNS }

// APIEndpoint is the address clients use for the API server, "host" or
// "host:port"; "" means the first control-plane host.
func (c *Cluster) APIEndpoint() string { return c.apiEndpoint }

// SSH is the cluster-wide SSH settings with defaults applied; each host's
// effective settings are in Host.SSH.
func (c *Cluster) SSH() SSH { return c.ssh.clone() }

// DeclRange is where the cluster block starts.
func (c *Cluster) DeclRange() hcl.Range { return c.declRange }

// Files lists the spec files the cluster was read from, in merge order.
func (c *Cluster) Files() []string { return slices.Clone(c.files) }

// Hosts returns every host in the order written (files in name order).
func (c *Cluster) Hosts() []Host {
	out := make([]Host, len(c.hosts))
	for i, h := range c.hosts {
		out[i] = h.clone()
	}
	return out
}

// Host returns the host called name.
func (c *Cluster) Host(name string) (Host, bool) {
	for _, h := range c.hosts {
		if h.Name == name {
			return h.clone(), true
		}
	}
	return Host{}, false
}

// HostsWithRole returns the hosts that have role, in spec order.
func (c *Cluster) HostsWithRole(role string) []Host {
	var out []Host
	for _, h := range c.hosts {
		if h.HasRole(role) {
			out = append(out, h.clone())
		}
	}
	return out
}

// ControlPlaneHosts returns the hosts with the control-plane role.
func (c *Cluster) ControlPlaneHosts() []Host { return c.HostsWithRole(RoleControlPlane) }

// EtcdHosts returns the hosts that run etcd members: the etcd component's
// hosts (by default those with the etcd role).
func (c *Cluster) EtcdHosts() []Host {
	comp, _ := c.Component(bundle.Etcd)
	return c.hostsNamed(comp.Hosts)
}

// HostsRunning returns the hosts a component runs on, in spec order.
func (c *Cluster) HostsRunning(component string) []Host {
	comp, ok := c.Component(component)
	if !ok {
		return nil
	}
	return c.hostsNamed(comp.Hosts)
}

func (c *Cluster) hostsNamed(names []string) []Host {
	var out []Host
	for _, h := range c.hosts {
		if slices.Contains(names, h.Name) {
			out = append(out, h.clone())
		}
	}
	return out
}

// Components returns every spec component (bundle.SpecComponents order),
// whether or not the spec has a block for it.
func (c *Cluster) Components() []Component {
	out := make([]Component, len(c.components))
	for i, comp := range c.components {
		out[i] = comp.clone()
	}
	return out
}

// Component returns the named component.
func (c *Cluster) Component(name string) (Component, bool) {
	for _, comp := range c.components {
		if comp.Name == name {
			return comp.clone(), true
		}
	}
	return Component{}, false
}

// Upgrade says how rollouts are paced and gated.
func (c *Cluster) Upgrade() UpgradePolicy { return c.upgrade }

// UpgradePolicy is the cluster's `upgrade` block with defaults applied.
type UpgradePolicy struct {
	WorkerBatchSize int           // workers whose kubelet and kube-proxy change at once (1)
	Drain           bool          // cordon and drain a worker before its kubelet changes (false)
	DrainTimeout    time.Duration // how long a drain may take (5m)
	GateTimeout     time.Duration // how long a component may take to become healthy (2m)
	KeepGenerations int           // earlier generations kept on each host for rollback (2)

	// A drain refuses, as kubectl drain does, pods no controller manages
	// and pods with emptyDir data, unless these allow them (false).
	DrainForce              bool // evict pods no controller manages (kubectl drain --force)
	DrainDeleteEmptyDirData bool // evict pods with emptyDir volumes (kubectl drain --delete-emptydir-data)
}

func defaultUpgrade() UpgradePolicy {
	return UpgradePolicy{WorkerBatchSize: 1, DrainTimeout: 5 * time.Minute, GateTimeout: 2 * time.Minute, KeepGenerations: 2}
}

// Artifacts says where component binaries come from.
func (c *Cluster) Artifacts() Artifacts { return c.artifacts }

// Variables returns the declared variables with their final values, in
// name order.
func (c *Cluster) Variables() []Variable { return slices.Clone(c.variables) }

// Variable returns the declared variable called name.
func (c *Cluster) Variable(name string) (Variable, bool) {
	for _, v := range c.variables {
		if v.Name == name {
			return v, true
		}
	}
	return Variable{}, false
}

// SSH is how clusterctl reaches a host.
type SSH struct {
	User            string
	Port            int
	IdentityFiles   []string // private key files, absolute paths
	UseAgent        bool     // offer the keys of the agent at SSH_AUTH_SOCK
	KnownHostsFile  string   // absolute path
	HostKeyPolicy   string   // HostKeyStrict or HostKeyAcceptNew
	Bastion         Bastion  // jump host; zero Address means none
	Sudo            bool     // run privileged commands through sudo
	SudoPasswordEnv string   // name of the environment variable holding the sudo password; "" means passwordless sudo
	PassphraseEnv   string   // name of the environment variable holding the identity files' passphrase; "" means ask on a terminal
	ConnectTimeout  time.Duration
}

func (s SSH) clone() SSH {
	s.IdentityFiles = slices.Clone(s.IdentityFiles)
	return s
}

// Bastion is an SSH jump host.
type Bastion struct {
	Address string // host name or IP
	User    string
	Port    int
}

// Host is one machine of the cluster.
type Host struct {
	Name            string
	Address         string // how clusterctl reaches it over SSH: an IP or a DNS name
	InternalAddress string // the IP the node advertises to the cluster; "" means Address (when it is an IP)
	Port            int    // SSH port (same as SSH.Port)
	User            string // SSH user (same as SSH.User)
	Roles           []string
	Labels          map[string]string
	Taints          []Taint
	SSH             SSH // effective settings: host overrides merged over the cluster-wide ssh block
	DeclRange       hcl.Range
	AddressRange    hcl.Range
}

// HasRole reports whether the host has role.
func (h Host) HasRole(role string) bool { return slices.Contains(h.Roles, role) }

// NodeAddress is the address the node advertises: InternalAddress, or
// Address when that is an IP. It is invalid when neither is an IP.
func (h Host) NodeAddress() netip.Addr {
	if h.InternalAddress != "" {
		a, _ := netip.ParseAddr(h.InternalAddress)
		return a
	}
	a, _ := netip.ParseAddr(h.Address)
	return a
}

func (h Host) clone() Host {
	h.Roles = slices.Clone(h.Roles)
	h.Labels = maps.Clone(h.Labels)
	h.Taints = slices.Clone(h.Taints)
	h.SSH = h.SSH.clone()
	return h
}

// Taint is a node taint, written "key=value:Effect" or "key:Effect".
type Taint struct {
	Key, Value, Effect string
}

func (t Taint) String() string {
	if t.Value == "" {
		return t.Key + ":" + t.Effect
	}
	return t.Key + "=" + t.Value + ":" + t.Effect
}

// Component is one of the spec components with its effective settings.
type Component struct {
	Name       string
	Version    string            // effective version, no leading "v"
	VersionSet bool              // the spec set version explicitly (else it comes from kubernetes_version)
	ExtraArgs  map[string]string // flag name (no dashes) -> value
	Hosts      []string          // names of the hosts it runs on, in spec order
	HostsSet   bool              // the spec listed hosts explicitly
	DeclRange  hcl.Range         // the component block; zero when the spec has none
	// VersionRange is the version attribute, or kubernetes_version when the
	// version is defaulted: where a plan points when it refuses a version.
	VersionRange hcl.Range
	sensitiveArg map[string]bool
}

// IsSensitiveArg reports whether the value of extra_args[key] comes from a
// sensitive variable: show "(sensitive)" instead of the value.
func (c Component) IsSensitiveArg(key string) bool { return c.sensitiveArg[key] }

func (c Component) clone() Component {
	c.ExtraArgs = maps.Clone(c.ExtraArgs)
	c.Hosts = slices.Clone(c.Hosts)
	c.sensitiveArg = maps.Clone(c.sensitiveArg)
	return c
}

// Artifacts says where component binaries come from.
type Artifacts struct {
	Dir string // local folder of artifacts; "" means the bundle cache
}

// Variable is a declared input variable and its final value.
type Variable struct {
	Name        string
	Description string
	Type        cty.Type
	Value       cty.Value // converted to Type, unmarked
	Sensitive   bool      // never print Value; DisplayValue says "(sensitive)"
	Source      ValueSource
	DeclRange   hcl.Range
}

// DisplayValue renders the value for people, hiding sensitive ones.
func (v Variable) DisplayValue() string {
	if v.Sensitive {
		return "(sensitive)"
	}
	return formatValue(v.Value)
}

// SourceKind says where a variable's value came from, lowest precedence first.
type SourceKind int

const (
	FromDefault  SourceKind = iota // the variable block's default
	FromEnv                        // CLUSTERCTL_VAR_<name>
	FromAutoFile                   // a *.auto.hclvars file in the spec folder
	FromVarFile                    // -var-file
	FromFlag                       // -var
)

// ValueSource is where a variable's value came from.
type ValueSource struct {
	Kind  SourceKind
	File  string    // FromAutoFile, FromVarFile: the file name
	Env   string    // FromEnv: the environment variable name
	Range hcl.Range // the value's range in its file, when it has one
}

func (s ValueSource) String() string {
	switch s.Kind {
	case FromEnv:
		return "environment variable " + s.Env
	case FromAutoFile:
		return "file " + s.File
	case FromVarFile:
		return "-var-file " + s.File
	case FromFlag:
		return "-var"
	}
	return "default"
}

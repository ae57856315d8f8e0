package pki

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"
)

// Kind says what an entry holds.
type Kind int

const (
	KindCA      Kind = iota + 1 // self-signed CA certificate + key
	KindLeaf                    // certificate signed by a CA + key
	KindKeyPair                 // bare key pair (the service-account signing key)
)

func (k Kind) String() string {
	switch k {
	case KindCA:
		return "CA"
	case KindLeaf:
		return "leaf"
	case KindKeyPair:
		return "key pair"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Usage is a leaf certificate's extended key usage.
type Usage int

const (
	UsageServer       Usage = 1 << iota // TLS server authentication
	UsageClient                         // TLS client authentication
	UsageServerClient = UsageServer | UsageClient
)

func (u Usage) String() string {
	switch u {
	case UsageServer:
		return "server"
	case UsageClient:
		return "client"
	case UsageServerClient:
		return "server+client"
	case 0:
		return "none"
	}
	return fmt.Sprintf("Usage(%d)", int(u))
}

// ExtKeyUsage returns the x509 extended key usages for u, server first.
func (u Usage) ExtKeyUsage() []x509.ExtKeyUsage {
	var out []x509.ExtKeyUsage
	if u&UsageServer != 0 {
		out = append(out, x509.ExtKeyUsageServerAuth)
	}
	if u&UsageClient != 0 {
		out = append(out, x509.ExtKeyUsageClientAuth)
	}
	return out
}

// Entry is one row of the table: a CA, a leaf certificate or a key pair,
// stored as two files under the PKI root (see CertFile and KeyFile).
type Entry struct {
	ID          string // file path without extension: "apiserver", "etcd/server-m1"
	Kind        Kind
	Description string // what the entry is for, for people

	CA           string // ID of the signing CA (leaves only)
	CommonName   string
	Organization []string
	Usage        Usage // leaves only
	DNSNames     []string
	IPs          []netip.Addr
	Validity     time.Duration // 0: Options.CAValidity or Options.LeafValidity

	CertHosts []string // hosts that get CertFile under HostPKIDir
	KeyHosts  []string // hosts that get KeyFile under HostPKIDir
}

// CertFile is the certificate's path relative to the PKI root; for a key
// pair, the public key's.
func (e Entry) CertFile() string {
	if e.Kind == KindKeyPair {
		return e.ID + ".pub"
	}
	return e.ID + ".crt"
}

// KeyFile is the private key's path relative to the PKI root.
func (e Entry) KeyFile() string { return e.ID + ".key" }

// KubeconfigEntry is one kubeconfig: a client certificate from the table,
// the CA that verifies the API server, and where the API server is.
type KubeconfigEntry struct {
	Name        string // "admin.conf", "kubelet-n1.conf"
	Cert        string // ID of the client certificate entry
	CA          string // ID of the CA entry embedded as certificate-authority-data
	Server      string // https://host:port
	ClusterName string
	UserName    string

	HostPath string   // absolute path on the hosts that get it
	Hosts    []string // hosts that get it
}

// Table is the declarative PKI of one cluster. Certs is in dependency order:
// CAs and key pairs first.
type Table struct {
	Certs       []Entry
	Kubeconfigs []KubeconfigEntry
}

// Entry returns the entry with the given ID.
func (t Table) Entry(id string) (Entry, bool) {
	for _, e := range t.Certs {
		if e.ID == id {
			return e, true
		}
	}
	return Entry{}, false
}

// Kubeconfig returns the kubeconfig entry with the given name.
func (t Table) Kubeconfig(name string) (KubeconfigEntry, bool) {
	for _, k := range t.Kubeconfigs {
		if k.Name == name {
			return k, true
		}
	}
	return KubeconfigEntry{}, false
}

// On-host locations. The layout under HostPKIDir mirrors the local PKI
// root, so restoring local state from a control plane is a plain copy.
const (
	HostKubeDir = "/etc/kubernetes"
	HostPKIDir  = "/etc/kubernetes/pki"
)

// HostPath is where a file of the local PKI root (CertFile or KeyFile)
// lives on a host.
func HostPath(rel string) string { return path.Join(HostPKIDir, rel) }

// Default validities.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
	DefaultRenewBefore  = 30 * 24 * time.Hour
)

// Entry IDs of the fixed rows; per-host rows are built by the functions
// below.
const (
	IDClusterCA           = "ca"
	IDEtcdCA              = "etcd/ca"
	IDFrontProxyCA        = "front-proxy-ca"
	IDServiceAccount      = "sa"
	IDAPIServer           = "apiserver"
	IDAPIServerKubelet    = "apiserver-kubelet-client"
	IDAPIServerEtcd       = "apiserver-etcd-client"
	IDFrontProxyClient    = "front-proxy-client"
	IDControllerManager   = "controller-manager-client"
	IDScheduler           = "scheduler-client"
	IDAdmin               = "admin-client"
	IDKubeProxy           = "kube-proxy-client"
	IDEtcdHealthcheck     = "etcd/healthcheck-client"
	KubeconfigAdmin       = "admin.conf"
	KubeconfigCM          = "controller-manager.conf"
	KubeconfigScheduler   = "scheduler.conf"
	KubeconfigKubeProxy   = "kube-proxy.conf"
	kubeconfigKubeletHost = "kubelet.conf"
)

// IDEtcdServer is the etcd serving certificate of one member.
func IDEtcdServer(member string) string { return "etcd/server-" + member }

// IDEtcdPeer is the etcd peer certificate of one member.
func IDEtcdPeer(member string) string { return "etcd/peer-" + member }

// IDKubeletClient is a node's kubelet client certificate (system:node:NAME).
func IDKubeletClient(node string) string { return "kubelet/" + node + "-client" }

// IDKubeletServing is a node's kubelet serving certificate.
func IDKubeletServing(node string) string { return "kubelet/" + node + "-serving" }

// KubeconfigKubelet is the name of a node's kubelet kubeconfig in the table
// (on the node itself it is /etc/kubernetes/kubelet.conf).
func KubeconfigKubelet(node string) string { return "kubelet-" + node + ".conf" }

// NewTable derives the full table from the cluster: which CAs, certificates
// and kubeconfigs exist, their subjects, SANs, usages, and which host gets
// which file. The result is deterministic for a given Cluster.
func NewTable(c Cluster) (Table, error) {
	if err := c.validate(); err != nil {
		return Table{}, fmt.Errorf("pki: %w", err)
	}
	serviceIP, _ := c.ServiceIP()
	epHost, _, _ := c.endpoint()
	serverURL, _ := c.ServerURL()
	localURL := c.LocalServerURL()

	cps := names(c.ControlPlanes)
	members := names(c.EtcdMembers)
	nodes := names(c.Nodes)

	var certs []Entry
	ca := func(id, cn, desc string, certHosts []string) {
		certs = append(certs, Entry{ID: id, Kind: KindCA, Description: desc, CommonName: cn,
			CertHosts: certHosts, KeyHosts: cps})
	}
	ca(IDClusterCA, "kubernetes", "cluster CA: signs API server, client and kubelet certificates", union(cps, nodes))
	ca(IDEtcdCA, "etcd-ca", "etcd CA: signs etcd server, peer and client certificates", union(cps, members))
	ca(IDFrontProxyCA, "front-proxy-ca", "front-proxy CA: signs the aggregation-layer client certificate", cps)
	certs = append(certs, Entry{ID: IDServiceAccount, Kind: KindKeyPair,
		Description: "service-account token signing key (kube-apiserver signs, everyone verifies with sa.pub)",
		CertHosts:   cps, KeyHosts: cps})

	leaf := func(e Entry) {
		e.Kind = KindLeaf
		e.DNSNames = sortedUnique(e.DNSNames)
		e.IPs = sortedAddrs(e.IPs)
		certs = append(certs, e)
	}

	// The API server certificate is shared by every control plane, so it
	// names all of them, loopback (components on the same host), the
	// endpoint, and the in-cluster names of the kubernetes Service.
	d := c.domain()
	apiDNS := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + d, "localhost"}
	apiIPs := []netip.Addr{serviceIP, netip.MustParseAddr("127.0.0.1")}
	for _, n := range c.ControlPlanes {
		apiDNS = append(apiDNS, n.Name)
		apiDNS = append(apiDNS, n.Hostnames...)
		apiIPs = append(apiIPs, n.Addresses...)
	}
	if a, err := netip.ParseAddr(epHost); err == nil {
		apiIPs = append(apiIPs, a)
	} else {
		apiDNS = append(apiDNS, epHost)
	}
	leaf(Entry{ID: IDAPIServer, Description: "kube-apiserver serving", CA: IDClusterCA,
		CommonName: "kube-apiserver", Usage: UsageServer, DNSNames: apiDNS, IPs: apiIPs,
		CertHosts: cps, KeyHosts: cps})
	leaf(Entry{ID: IDAPIServerKubelet, Description: "kube-apiserver → kubelet client", CA: IDClusterCA,
		CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Usage: UsageClient,
		CertHosts: cps, KeyHosts: cps})
	leaf(Entry{ID: IDAPIServerEtcd, Description: "kube-apiserver → etcd client", CA: IDEtcdCA,
		CommonName: "kube-apiserver-etcd-client", Usage: UsageClient,
		CertHosts: cps, KeyHosts: cps})
	leaf(Entry{ID: IDFrontProxyClient, Description: "kube-apiserver → aggregated API servers (front proxy)", CA: IDFrontProxyCA,
		CommonName: "front-proxy-client", Usage: UsageClient,
		CertHosts: cps, KeyHosts: cps})
	leaf(Entry{ID: IDControllerManager, Description: "kube-controller-manager → API (in controller-manager.conf)", CA: IDClusterCA,
		CommonName: "system:kube-controller-manager", Usage: UsageClient})
	leaf(Entry{ID: IDScheduler, Description: "kube-scheduler → API (in scheduler.conf)", CA: IDClusterCA,
		CommonName: "system:kube-scheduler", Usage: UsageClient})
	leaf(Entry{ID: IDAdmin, Description: "cluster administrator (in admin.conf)", CA: IDClusterCA,
		CommonName: "kubernetes-admin", Organization: []string{"system:masters"}, Usage: UsageClient})
	if len(nodes) > 0 {
		leaf(Entry{ID: IDKubeProxy, Description: "kube-proxy → API (in kube-proxy.conf)", CA: IDClusterCA,
			CommonName: "system:kube-proxy", Usage: UsageClient})
	}
	leaf(Entry{ID: IDEtcdHealthcheck, Description: "etcd health checks", CA: IDEtcdCA,
		CommonName: "kube-etcd-healthcheck-client", Usage: UsageClient,
		CertHosts: members, KeyHosts: members})
	for _, m := range c.EtcdMembers {
		dns := append([]string{m.Name}, m.Hostnames...)
		// etcd's gateway dials its own client URL with the server certificate,
		// so the server certificate is also a client certificate.
		leaf(Entry{ID: IDEtcdServer(m.Name), Description: "etcd serving for clients on " + m.Name, CA: IDEtcdCA,
			CommonName: m.Name, Usage: UsageServerClient,
			DNSNames: append(dns, "localhost"), IPs: append(slices.Clone(m.Addresses), netip.MustParseAddr("127.0.0.1")),
			CertHosts: []string{m.Name}, KeyHosts: []string{m.Name}})
		leaf(Entry{ID: IDEtcdPeer(m.Name), Description: "etcd peer traffic of " + m.Name, CA: IDEtcdCA,
			CommonName: m.Name, Usage: UsageServerClient, DNSNames: dns, IPs: m.Addresses,
			CertHosts: []string{m.Name}, KeyHosts: []string{m.Name}})
	}
	for _, n := range c.Nodes {
		leaf(Entry{ID: IDKubeletClient(n.Name), Description: "kubelet → API on " + n.Name + " (in its kubelet.conf)", CA: IDClusterCA,
			CommonName: "system:node:" + n.Name, Organization: []string{"system:nodes"}, Usage: UsageClient})
		leaf(Entry{ID: IDKubeletServing(n.Name), Description: "kubelet serving on " + n.Name, CA: IDClusterCA,
			CommonName: "system:node:" + n.Name, Organization: []string{"system:nodes"}, Usage: UsageServer,
			DNSNames: append([]string{n.Name}, n.Hostnames...), IPs: n.Addresses,
			CertHosts: []string{n.Name}, KeyHosts: []string{n.Name}})
	}

	cn := func(id string) string {
		for _, e := range certs {
			if e.ID == id {
				return e.CommonName
			}
		}
		return ""
	}
	kc := func(name, cert, server, hostPath string, hosts []string) KubeconfigEntry {
		return KubeconfigEntry{Name: name, Cert: cert, CA: IDClusterCA, Server: server,
			ClusterName: c.name(), UserName: cn(cert), HostPath: hostPath, Hosts: hosts}
	}
	kcs := []KubeconfigEntry{
		kc(KubeconfigAdmin, IDAdmin, serverURL, path.Join(HostKubeDir, KubeconfigAdmin), cps),
		kc(KubeconfigCM, IDControllerManager, localURL, path.Join(HostKubeDir, KubeconfigCM), cps),
		kc(KubeconfigScheduler, IDScheduler, localURL, path.Join(HostKubeDir, KubeconfigScheduler), cps),
	}
	if len(nodes) > 0 {
		kcs = append(kcs, kc(KubeconfigKubeProxy, IDKubeProxy, serverURL, path.Join(HostKubeDir, KubeconfigKubeProxy), nodes))
	}
	for _, n := range nodes {
		kcs = append(kcs, kc(KubeconfigKubelet(n), IDKubeletClient(n), serverURL,
			path.Join(HostKubeDir, kubeconfigKubeletHost), []string{n}))
	}
	t := Table{Certs: certs, Kubeconfigs: kcs}
	if err := t.validate(); err != nil {
		return Table{}, fmt.Errorf("pki: %w", err)
	}
	return t, nil
}

func names(ns []Node) []string {
	out := make([]string, 0, len(ns))
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// union keeps first-seen order and drops repeats.
func union(lists ...[]string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedAddrs(a []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(a))
	for _, x := range a {
		out = append(out, x.Unmap())
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// validate checks what Ensure and HostFiles rely on, so a hand-edited table
// fails clearly instead of half-way through writing.
func (t Table) validate() error {
	ids := map[string]Kind{}
	for i, e := range t.Certs {
		if e.ID == "" || path.IsAbs(e.ID) || path.Clean(e.ID) != e.ID || strings.HasPrefix(e.ID, "..") {
			return fmt.Errorf("entry #%d: ID %q must be a clean relative path", i+1, e.ID)
		}
		if _, dup := ids[e.ID]; dup {
			return fmt.Errorf("entry %s: listed twice", e.ID)
		}
		switch e.Kind {
		case KindCA, KindKeyPair:
		case KindLeaf:
			k, ok := ids[e.CA]
			if !ok || k != KindCA {
				return fmt.Errorf("entry %s: signing CA %q is not a CA listed before it", e.ID, e.CA)
			}
			if e.Usage&^UsageServerClient != 0 || e.Usage == 0 {
				return fmt.Errorf("entry %s: bad usage %v", e.ID, e.Usage)
			}
			if e.CommonName == "" {
				return fmt.Errorf("entry %s: no common name", e.ID)
			}
		default:
			return fmt.Errorf("entry %s: unknown kind %v", e.ID, e.Kind)
		}
		if e.Validity < 0 {
			return fmt.Errorf("entry %s: negative validity", e.ID)
		}
		ids[e.ID] = e.Kind
	}
	names := map[string]bool{}
	for _, k := range t.Kubeconfigs {
		if k.Name == "" || strings.Contains(k.Name, "/") {
			return fmt.Errorf("kubeconfig %q: name must be a plain file name", k.Name)
		}
		if names[k.Name] {
			return fmt.Errorf("kubeconfig %s: listed twice", k.Name)
		}
		names[k.Name] = true
		if ids[k.Cert] != KindLeaf {
			return fmt.Errorf("kubeconfig %s: client certificate %q is not a leaf in the table", k.Name, k.Cert)
		}
		if ids[k.CA] != KindCA {
			return fmt.Errorf("kubeconfig %s: CA %q is not in the table", k.Name, k.CA)
		}
		if !strings.HasPrefix(k.Server, "https://") {
			return fmt.Errorf("kubeconfig %s: server %q is not an https URL", k.Name, k.Server)
		}
		if k.HostPath != "" && !path.IsAbs(k.HostPath) {
			return fmt.Errorf("kubeconfig %s: host path %q is not absolute", k.Name, k.HostPath)
		}
	}
	return nil
}

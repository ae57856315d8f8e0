// Package pki keeps the cluster's certificate authorities, certificates,
// service-account key pair and kubeconfigs as one declarative table
// (NewTable), and makes a store match it (Ensure): verify what is there,
// create what is missing, renew what is about to expire, reissue what no
// longer matches. Check answers the same question without writing, for plan.
//
// The package takes plain inputs (Cluster) and depends only on the standard
// library, so that spec, plan and components can all use it.
package pki

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultAPIServerPort is kube-apiserver's secure port unless the cluster
// says otherwise.
const DefaultAPIServerPort = 6443

// Cluster is what the certificate table is derived from.
type Cluster struct {
	Name          string       // kubeconfig cluster name; "kubernetes" when empty
	ClusterDomain string       // "cluster.local" when empty
	ServiceCIDR   netip.Prefix // its first address is the kubernetes Service IP
	// APIEndpoint is how nodes and users reach the API: a host name or
	// address, optionally with ":port" (a load balancer or VIP). Empty means
	// the first control plane's first address.
	APIEndpoint   string
	APIServerPort int // the port kube-apiserver listens on; 6443 when 0

	ControlPlanes []Node // kube-apiserver, controller-manager, scheduler
	EtcdMembers   []Node
	Nodes         []Node // every host running a kubelet and kube-proxy
}

// Node is one host as the certificates see it. Name is the Kubernetes node
// name (and etcd member name) and also names files, so it must be a DNS
// name in lower case.
type Node struct {
	Name      string
	Addresses []netip.Addr
	Hostnames []string
}

func (c Cluster) name() string {
	if c.Name == "" {
		return "kubernetes"
	}
	return c.Name
}

func (c Cluster) domain() string {
	if c.ClusterDomain == "" {
		return "cluster.local"
	}
	return c.ClusterDomain
}

func (c Cluster) port() int {
	if c.APIServerPort == 0 {
		return DefaultAPIServerPort
	}
	return c.APIServerPort
}

// ServiceIP is the first usable address of the service range: the
// ClusterIP of the "kubernetes" Service in the default namespace.
func (c Cluster) ServiceIP() (netip.Addr, error) {
	p := c.ServiceCIDR
	if !p.IsValid() {
		return netip.Addr{}, errors.New("service CIDR is not set")
	}
	p = p.Masked()
	if p.Bits() >= p.Addr().BitLen()-1 {
		return netip.Addr{}, fmt.Errorf("service CIDR %s is too small", p)
	}
	return p.Addr().Next(), nil
}

// endpoint returns the host and port nodes and users connect to.
func (c Cluster) endpoint() (host string, port int, err error) {
	if c.APIEndpoint == "" {
		if len(c.ControlPlanes) == 0 || len(c.ControlPlanes[0].Addresses) == 0 {
			return "", 0, errors.New("no API endpoint: set one, or give the first control plane an address")
		}
		return c.ControlPlanes[0].Addresses[0].Unmap().String(), c.port(), nil
	}
	h, p, splitErr := net.SplitHostPort(c.APIEndpoint)
	if splitErr != nil {
		// No port: a bare name, IPv4 address, IPv6 address, or [IPv6].
		h = strings.TrimSuffix(strings.TrimPrefix(c.APIEndpoint, "["), "]")
		p = strconv.Itoa(c.port())
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("API endpoint %q: bad port %q", c.APIEndpoint, p)
	}
	if _, err := netip.ParseAddr(h); err != nil && !validDNSName(h) {
		return "", 0, fmt.Errorf("API endpoint %q: %q is neither an IP address nor a DNS name", c.APIEndpoint, h)
	}
	return h, n, nil
}

// ServerURL is the API URL for kubeconfigs used off the control plane
// (kubelet, kube-proxy, admin).
func (c Cluster) ServerURL() (string, error) {
	h, p, err := c.endpoint()
	if err != nil {
		return "", err
	}
	return "https://" + net.JoinHostPort(h, strconv.Itoa(p)), nil
}

// LocalServerURL is the API URL control-plane components use on their own
// host: the local apiserver over loopback, so they keep working while
// another control plane or the load balancer is down.
func (c Cluster) LocalServerURL() string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port()))
}

func (c Cluster) validate() error {
	var errs []error
	if _, err := c.ServiceIP(); err != nil {
		errs = append(errs, err)
	}
	if !validDNSName(c.domain()) {
		errs = append(errs, fmt.Errorf("cluster domain %q is not a DNS name", c.domain()))
	}
	if p := c.port(); p < 1 || p > 65535 {
		errs = append(errs, fmt.Errorf("API server port %d out of range", p))
	}
	if len(c.ControlPlanes) == 0 {
		errs = append(errs, errors.New("no control-plane hosts"))
	}
	if len(c.EtcdMembers) == 0 {
		errs = append(errs, errors.New("no etcd members"))
	}
	if _, _, err := c.endpoint(); err != nil {
		errs = append(errs, err)
	}
	for _, g := range []struct {
		role  string
		nodes []Node
	}{{"control plane", c.ControlPlanes}, {"etcd member", c.EtcdMembers}, {"node", c.Nodes}} {
		seen := map[string]bool{}
		for i, n := range g.nodes {
			if !validDNSName(n.Name) {
				errs = append(errs, fmt.Errorf("%s #%d: name %q must be a lower-case DNS name", g.role, i+1, n.Name))
				continue
			}
			if seen[n.Name] {
				errs = append(errs, fmt.Errorf("%s %s: listed twice", g.role, n.Name))
			}
			seen[n.Name] = true
			for _, a := range n.Addresses {
				if !a.IsValid() {
					errs = append(errs, fmt.Errorf("%s %s: invalid address", g.role, n.Name))
				}
			}
			for _, h := range n.Hostnames {
				if !validDNSName(h) {
					errs = append(errs, fmt.Errorf("%s %s: host name %q is not a DNS name", g.role, n.Name, h))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// validDNSName accepts lower-case RFC 1123 names: dot-separated labels of
// letters, digits and inner hyphens. It is also what keeps names safe to
// use in file names.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

package components

import (
	"net/netip"
	"slices"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/spec"
)

// PKICluster is the certificate table's view of the spec.
func PKICluster(c *spec.Cluster) pki.Cluster {
	node := func(h spec.Host) pki.Node {
		n := pki.Node{Name: h.Name}
		if a := h.NodeAddress(); a.IsValid() {
			n.Addresses = append(n.Addresses, a)
		}
		if a, err := netip.ParseAddr(h.Address); err == nil && !slices.Contains(n.Addresses, a) {
			n.Addresses = append(n.Addresses, a)
		} else if err != nil {
			n.Hostnames = append(n.Hostnames, h.Address)
		}
		return n
	}
	pc := pki.Cluster{Name: c.Name(), ServiceCIDR: c.ServiceCIDR(), APIEndpoint: c.APIEndpoint()}
	for _, h := range c.HostsRunning(bundle.KubeAPIServer) {
		pc.ControlPlanes = append(pc.ControlPlanes, node(h))
	}
	for _, h := range c.EtcdHosts() {
		pc.EtcdMembers = append(pc.EtcdMembers, node(h))
	}
	for _, h := range c.HostsRunning(bundle.Kubelet) {
		pc.Nodes = append(pc.Nodes, node(h))
	}
	return pc
}

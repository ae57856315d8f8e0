package components

import (
	"fmt"
	"net"
	"path"

	"github.com/containernetworking/cni/libcni"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/podnet"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/templates"
)

// cniNetworkName is the name of the CNI network in the network list.
const cniNetworkName = "clusterctl"

// cniConfig renders the node's CNI network list: the seed's bridge with
// host-local addresses from the node's pod CIDR, no masquerading by the
// bridge plugin (the keeper masquerades only traffic leaving the pod
// network), hairpin so a pod reaches itself through a Service, and
// portmap for hostPort. It is checked with libcni before it is used.
func cniConfig(subnet string) ([]byte, error) {
	list, err := templates.Render(templates.CNIConfList, struct{ Name, Bridge, Subnet string }{cniNetworkName, "cni0", subnet})
	if err != nil {
		return nil, err
	}
	if _, err := libcni.ConfListFromBytes(list); err != nil {
		return nil, fmt.Errorf("rendered CNI network list is invalid: %w", err)
	}
	return list, nil
}

// cni renders the pod network of one node: the bundled CNI plugins, the
// network list with the node's pod CIDR, and the keeper (`clusterctl agent
// cni`, run by the agent) that installs them and holds the routes to every
// other node's pod CIDR and the masquerade rule in place.
func cni(in Input, h spec.Host) (Desired, error) {
	version := in.version(bundle.CNI)
	arts, err := artifacts(in.Cache, in.platform(h.Name), bundle.CNI, version, bundle.CNIPlugins()...)
	if err != nil {
		return Desired{}, err
	}
	cidrs, err := in.PodCIDRs()
	if err != nil {
		return Desired{}, err
	}
	own, ok := cidrs[h.Name]
	if !ok {
		return Desired{}, fmt.Errorf("host %s runs cni but not the kubelet; the pod network is for nodes", h.Name)
	}
	if _, err := nodeAddress(h); err != nil {
		return Desired{}, err
	}
	var routes []podnet.Route
	for _, o := range in.Cluster.HostsRunning(bundle.Kubelet) {
		if o.Name == h.Name {
			continue
		}
		via, err := nodeAddress(o)
		if err != nil {
			return Desired{}, err
		}
		routes = append(routes, podnet.Route{Node: o.Name, Dst: cidrs[o.Name], Via: via})
	}
	list, err := cniConfig(own.String())
	if err != nil {
		return Desired{}, err
	}
	const listFile, configFile = "cni.conflist", "network.json"
	cfg := podnet.Config{
		Node: h.Name, PodCIDR: own, ClusterCIDR: in.Cluster.PodCIDR().Masked(), Routes: routes,
		ConfList: listFile, ConfDir: CNIConfDir, ConfName: CNIConfName,
		PluginDir: path.Dir(arts[0].Dest), BinDir: CNIBinDir, Plugins: bundle.CNIPlugins(),
		HealthAddress: net.JoinHostPort("127.0.0.1", itoa(CNIHealthPort)),
	}
	if err := cfg.Validate(); err != nil {
		return Desired{}, fmt.Errorf("pod network of %s: %w", h.Name, err)
	}
	netJSON, err := cfg.Marshal()
	if err != nil {
		return Desired{}, err
	}
	return Desired{
		Component: bundle.CNI, Host: h.Name, Address: advertiseAddress(h), Version: version,
		Artifacts: arts,
		Config: []File{
			{Path: configFile, Data: netJSON, Mode: 0o644},
			{Path: listFile, Data: list, Mode: 0o644},
		},
		Dirs: []Dir{{Path: CNIConfDir, Mode: 0o755}, {Path: CNIBinDir, Mode: 0o755}, {Path: "/var/lib/cni", Mode: 0o755}},
		Unit: agent.Unit{
			Name: bundle.CNI, Version: version,
			Exec: AgentBinary,
			// --pod-cidr repeats the config's value so that installed.json
			// records the node's range: the allocation survives a lost
			// local state.
			Args:   []string{"agent", "cni", "--config=" + configFile, "--pod-cidr=" + own.String()},
			Health: agent.Health{Type: agent.HealthHTTP, URL: "http://" + cfg.HealthAddress + "/healthz"},
		},
	}, nil
}

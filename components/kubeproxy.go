package components

import (
	"fmt"
	"net"
	"path"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/templates"
)

// kubeProxyConfig is what templates/kube-proxy-config.yaml.tmpl needs.
type kubeProxyConfig struct {
	Node           string
	Kubeconfig     string
	BindAddress    string
	HealthzAddress string
	ClusterCIDR    string
	SharedKernel   bool // a lab host: leave machine-wide conntrack sizing alone
}

// kubeProxy renders kube-proxy in iptables mode with its own client
// certificate (system:kube-proxy): Services on their cluster IPs, NodePorts
// on the node's primary address, masquerading only traffic from outside
// the pod network.
func kubeProxy(in Input, h spec.Host) (Desired, error) {
	addr, err := nodeAddress(h)
	if err != nil {
		return Desired{}, err
	}
	version := in.version(bundle.KubeProxy)
	arts, err := artifacts(in.Cache, in.platform(h.Name), bundle.KubeProxy, version, bundle.KubeProxy)
	if err != nil {
		return Desired{}, err
	}
	conf := path.Join(pki.HostKubeDir, pki.KubeconfigKubeProxy)
	_, lab := in.Lab[h.Name]
	cfg := kubeProxyConfig{
		Node: h.Name, Kubeconfig: conf, BindAddress: addr.String(),
		HealthzAddress: net.JoinHostPort("0.0.0.0", itoa(KubeProxyHealthzPort)),
		ClusterCIDR:    in.Cluster.PodCIDR().Masked().String(),
		SharedKernel:   lab,
	}
	yaml, err := templates.Render(templates.KubeProxyConfig, cfg)
	if err != nil {
		return Desired{}, fmt.Errorf("kube-proxy on %s: %w", h.Name, err)
	}
	kc, err := in.kubeconfigFile(pki.KubeconfigKubeProxy, conf)
	if err != nil {
		return Desired{}, fmt.Errorf("kube-proxy on %s: %w", h.Name, err)
	}
	return Desired{
		Component: bundle.KubeProxy, Host: h.Name, Address: addr.String(), Version: version,
		Artifacts: arts, Shared: []File{kc},
		Config: []File{{Path: "kube-proxy-config.yaml", Data: yaml, Mode: 0o600}},
		Unit: agent.Unit{
			Name: bundle.KubeProxy, Version: version,
			Exec: arts[0].Dest,
			Args: mergeArgs(map[string]string{"config": "kube-proxy-config.yaml"}, in.extraArgs(bundle.KubeProxy)),
			// 200 once the Service rules are programmed.
			Health: agent.Health{Type: agent.HealthHTTP, URL: url("http", "127.0.0.1", KubeProxyHealthzPort) + "/healthz"},
			Limits: agent.Limits{NOFILE: 1048576},
		},
	}, nil
}

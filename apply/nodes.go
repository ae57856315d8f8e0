package apply

import (
	"context"
	"fmt"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/components"
)

// syncNode gives a node the labels and taints of the spec once its kubelet
// passed its health gate (the Node exists), through the administrator
// kubeconfig of the first connected control plane.
func (s *Session) syncNode(ctx context.Context, node string) error {
	h, ok := s.Cluster.Host(node)
	if !ok {
		return fmt.Errorf("node %s is not in the spec", node)
	}
	for _, cp := range s.Cluster.HostsRunning(bundle.KubeAPIServer) {
		if ch, ok := s.Host(cp.Name); ok {
			return components.SyncNode(ctx, ch, node, components.DesiredNodeMeta(h))
		}
	}
	return fmt.Errorf("node %s: no control-plane host is connected to set its labels and taints through", node)
}

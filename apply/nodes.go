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

// controlPlane returns a connected control-plane host, through which
// node-level API calls are made with its admin kubeconfig.
func (s *Session) controlPlane() (components.Host, error) {
	for _, cp := range s.Cluster.HostsRunning(bundle.KubeAPIServer) {
		if ch, ok := s.Host(cp.Name); ok {
			return ch, nil
		}
	}
	return nil, fmt.Errorf("no control-plane host is connected")
}

func (s *Session) drainNode(ctx context.Context, node string) error {
	cp, err := s.controlPlane()
	if err != nil {
		return fmt.Errorf("drain %s: %w", node, err)
	}
	s.logf("  %s: draining (timeout %s)", node, s.Cluster.Upgrade().DrainTimeout)
	return components.DrainNode(ctx, cp, node, s.Cluster.Upgrade().DrainTimeout)
}

func (s *Session) uncordonNode(ctx context.Context, node string) error {
	cp, err := s.controlPlane()
	if err != nil {
		return fmt.Errorf("uncordon %s: %w", node, err)
	}
	return components.UncordonNode(ctx, cp, node)
}

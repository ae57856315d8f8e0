package components

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/clusterctl/clusterctl/pki"
)

// DeleteNode deletes the Node of a host that left the spec, through a
// control-plane host's admin kubeconfig, once its kubelet is gone.
func DeleteNode(ctx context.Context, cp Host, node string) error {
	args := []string{AgentBinary, "agent", "delete-node", "--kubeconfig=" + path.Join(pki.HostKubeDir, pki.KubeconfigAdmin), "--node=" + node}
	out, err := cp.Run(ctx, shellJoin(args...)+" 2>&1")
	if err != nil {
		return fmt.Errorf("delete node %s through %s: %w: %s", node, cp.Name(), err, strings.TrimSpace(string(out)))
	}
	return nil
}

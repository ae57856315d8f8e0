package main

import (
	"github.com/clusterctl/clusterctl/kubeapi"
	"github.com/spf13/cobra"
)

// newAgentDeleteNodeCmd deletes the Node of a host that left the spec,
// through a control-plane host's admin kubeconfig, once its kubelet is
// gone.
func newAgentDeleteNodeCmd() *cobra.Command {
	var kubeconfig, node string
	cmd := &cobra.Command{
		Use:    "delete-node --kubeconfig ADMIN.CONF --node NAME",
		Short:  "Delete a Node that left the cluster (one already gone is fine)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kubeapi.Load(kubeconfig)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.DeleteNode(cmd.Context(), node)
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "/etc/kubernetes/admin.conf", "an administrator kubeconfig `FILE`")
	cmd.Flags().StringVar(&node, "node", "", "the Node's `NAME`")
	_ = cmd.MarkFlagRequired("node")
	return cmd
}

package main

import (
	"fmt"
	"time"

	"github.com/clusterctl/clusterctl/kubeapi"
	"github.com/spf13/cobra"
)

// newAgentDrainCmds are the on-host helpers apply runs on a control-plane
// host (with its admin kubeconfig) to drain a node before its kubelet
// changes and to uncordon it afterwards.
func newAgentDrainCmds() []*cobra.Command {
	var kubeconfig, node string
	var timeout time.Duration
	drain := &cobra.Command{
		Use:    "drain --kubeconfig ADMIN.CONF --node NAME [--timeout 5m]",
		Short:  "Cordon a node and evict its pods through the Eviction API (PodDisruptionBudgets respected)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kubeapi.Load(kubeconfig)
			if err != nil {
				return err
			}
			defer c.Close()
			rep, err := c.Drain(cmd.Context(), node, timeout)
			for _, p := range rep.Evicted {
				fmt.Fprintf(cmd.OutOrStdout(), "evicted %s\n", p)
			}
			for _, p := range rep.Skipped {
				fmt.Fprintf(cmd.OutOrStdout(), "left %s\n", p)
			}
			return err
		},
	}
	drain.Flags().StringVar(&kubeconfig, "kubeconfig", "/etc/kubernetes/admin.conf", "an administrator kubeconfig `FILE`")
	drain.Flags().StringVar(&node, "node", "", "the Node's `NAME`")
	drain.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up after this long (the node stays cordoned)")
	_ = drain.MarkFlagRequired("node")

	var ukubeconfig, unode string
	uncordon := &cobra.Command{
		Use:    "uncordon --kubeconfig ADMIN.CONF --node NAME",
		Short:  "Mark a node schedulable again",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := kubeapi.Load(ukubeconfig)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Cordon(cmd.Context(), unode, false)
		},
	}
	uncordon.Flags().StringVar(&ukubeconfig, "kubeconfig", "/etc/kubernetes/admin.conf", "an administrator kubeconfig `FILE`")
	uncordon.Flags().StringVar(&unode, "node", "", "the Node's `NAME`")
	_ = uncordon.MarkFlagRequired("node")
	return []*cobra.Command{drain, uncordon}
}

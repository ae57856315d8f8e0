package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newForceUnlockCmd(g *globals) *cobra.Command {
	var o clusterOptions
	cmd := &cobra.Command{
		Use:   "force-unlock LOCK_ID",
		Short: "Release a state lock left by a run that is gone",
		Long: `Force-unlock removes the state lock with the given ID. Use it only when the
run holding the lock is gone (its machine crashed); a lock left by a killed
run on this machine is taken over automatically.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st := o.store(g)
			if err := st.ForceUnlock(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Released the state lock %s.\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&o.stateDir, "state-dir", "", "state folder (default: .clusterctl in the spec folder)")
	return cmd
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newForceUnlockCmd(g *globals) *cobra.Command {
	var o clusterOptions
	cmd := &cobra.Command{
		Use:   "force-unlock [LOCK_ID]",
		Short: "Release a state lock left by a run that is gone",
		Long: `Force-unlock removes the state lock with the given ID. Use it only when the
run holding the lock is gone (its machine crashed); a lock left by a killed
run on this machine is taken over automatically.

A corrupt lock file (truncated, not JSON, no lock ID) blocks every run and
has no ID to give: force-unlock removes it with or without LOCK_ID.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			r, err := o.store(g).ForceRelease(id)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if r.Corrupt != "" {
				fmt.Fprintf(w, "Removed the corrupt state lock %s (%d bytes; %s).\n", r.Path, r.Size, r.Corrupt)
				if r.Preview != "" {
					fmt.Fprintf(w, "It began: %s\n", r.Preview)
				}
				return nil
			}
			fmt.Fprintf(w, "Released the state lock held by %s.\n", r.Info.Summary())
			return nil
		},
	}
	cmd.Flags().StringVar(&o.stateDir, "state-dir", "", "state folder (default: .clusterctl in the spec folder)")
	return cmd
}

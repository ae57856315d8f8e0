package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func newForceUnlockCmd(g *globals) *cobra.Command {
	var (
		o         clusterOptions
		localOnly bool
	)
	cmd := &cobra.Command{
		Use:   "force-unlock [LOCK_ID]",
		Short: "Release a lock left by a run that is gone",
		Long: `Force-unlock removes the lock with the given ID: the state lock in the state
folder and the lease on the cluster's hosts. Use it only when the run
holding the lock is gone (its machine crashed); a lock left by a killed run
on this machine is taken over automatically, and a killed run's host lease
expires by itself 20 s after its last renewal.

It works from any machine with the spec: the hosts are reached as apply
reaches them, and only a lease with LOCK_ID is removed there. -local-only
(or a folder without a spec) touches only the state folder.

A corrupt lock file (truncated, not JSON, no lock ID) blocks every run and
has no ID to give: force-unlock removes it with or without LOCK_ID.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			w := cmd.OutOrStdout()
			r, localErr := o.store(g).ForceRelease(id)
			if localErr == nil {
				if r.Corrupt != "" {
					fmt.Fprintf(w, "Removed the corrupt state lock %s (%d bytes; %s).\n", r.Path, r.Size, r.Corrupt)
					if r.Preview != "" {
						fmt.Fprintf(w, "It began: %s\n", r.Preview)
					}
				} else {
					fmt.Fprintf(w, "Released the state lock held by %s.\n", r.Info.Summary())
				}
			}
			if localOnly || id == "" || !hasSpec(g.chdir) {
				return localErr
			}
			s, err := openSession(cmd.Context(), g, &o, io.Discard, cmd.ErrOrStderr())
			if err != nil {
				return fmt.Errorf("the host lease was not released: %w", err)
			}
			defer s.Close()
			n, err := forceReleaseHosts(cmd.Context(), s, id, w)
			if err != nil {
				return err
			}
			if n == 0 && localErr != nil {
				return fmt.Errorf("%w; no host holds a lease with run ID %s either", localErr, printableID(id))
			}
			return nil
		},
	}
	addClusterFlags(cmd.Flags(), &o)
	cmd.Flags().BoolVar(&localOnly, "local-only", false, "release only the state lock in the state folder, not the host lease")
	return cmd
}

// hasSpec reports whether dir holds a spec (*.hcl) to reach the hosts by.
func hasSpec(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
	if len(m) > 0 {
		return true
	}
	_, err := os.Stat(filepath.Join(dir, "cluster.hcl"))
	return err == nil
}

// printableID quotes an ID given on the command line for a message.
func printableID(id string) string { return fmt.Sprintf("%q", id) }

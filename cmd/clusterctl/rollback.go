package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/clusterctl/clusterctl/components"
	"github.com/spf13/cobra"
)

func newRollbackCmd(g *globals) *cobra.Command {
	var (
		o           clusterOptions
		hosts       []string
		autoApprove bool
	)
	cmd := &cobra.Command{
		Use:   "rollback COMPONENT",
		Short: "Put a component back on its previous installed generation",
		Long: `Rollback switches COMPONENT back to the generation it ran before the last
change (its previous binary and config, kept on each host: nothing is
uploaded), one host at a time in the reverse of the upgrade order, each
behind its health gate. It refuses a rollback that would break the
version-skew rules (roll back the kubelets before the API servers).

The spec is not changed: a later plan shows the change as pending again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			component := args[0]
			if !slices.Contains(components.Names(), component) || component == components.AgentComponent {
				return fmt.Errorf("unknown component %q (one of %s)", component, strings.Join(components.Names()[1:], ", "))
			}
			ctx := cmd.Context()
			stdout := cmd.OutOrStdout()
			s, err := openSession(ctx, g, &o, stdout, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer s.Close()
			lock, err := s.Store.Lock("rollback")
			if err != nil {
				return err
			}
			defer s.Store.Unlock(lock.ID)
			rp, w, err := s.PlanRollback(ctx, component, hosts)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "\nclusterctl will roll back %s, one host at a time:\n", component)
			for i, st := range rp.Steps {
				fmt.Fprintf(stdout, "  %d. %s: generation %d (%s) -> generation %d (%s)\n", i+1, st.Host,
					st.From.Number, st.From.Version, st.To.Number, st.To.Version)
			}
			if !autoApprove {
				ok, err := confirm(g.stdin, stdout)
				if err != nil {
					return err
				}
				if !ok {
					fmt.Fprintln(stdout, "\nRollback cancelled.")
					return silentExit(1)
				}
			}
			fmt.Fprintln(stdout)
			if err := s.Rollback(ctx, rp, w, lock.ID); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "\nRolled back %s on %d hosts. The spec still asks for the newer version: `clusterctl plan` shows it as pending.\n", component, len(rp.Steps))
			return nil
		},
	}
	addClusterFlags(cmd.Flags(), &o)
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "roll back only on these hosts (repeatable)")
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "skip the interactive approval")
	return cmd
}

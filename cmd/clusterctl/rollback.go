package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/spf13/cobra"
)

func newRollbackCmd(g *globals) *cobra.Command {
	var (
		o           clusterOptions
		hosts       []string
		autoApprove bool
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "rollback COMPONENT",
		Short: "Put a component back on its previous installed generation",
		Long: `Rollback switches COMPONENT back to the generation it ran before the last
change (its previous binary and config, kept on each host: nothing is
uploaded), one host at a time in the reverse of the upgrade order, each
behind its health gate (etcd: with a snapshot first and the quorum checked
after each member). It shows the plan and asks for approval, and refuses a
rollback that would break the version-skew rules (roll back the kubelets
before the API servers). It is ` + "`plan -rollback COMPONENT`" + ` and ` + "`apply`" + ` in one.

The spec is not changed: a later plan shows the change as pending again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := rollbackOptions(args[0], hosts)
			if err != nil {
				return err
			}
			r := run{opts: opts, autoApprove: autoApprove, asJSON: asJSON}
			return r.exec(cmd.Context(), g, &o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	addClusterFlags(cmd.Flags(), &o)
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "roll back only on these hosts (repeatable)")
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "skip the interactive approval")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable events (JSON lines) instead of text")
	return cmd
}

// rollbackOptions checks the component name and makes a rollback plan's
// options.
func rollbackOptions(component string, hosts []string) (apply.Options, error) {
	if !slices.Contains(components.Names(), component) || component == components.AgentComponent {
		return apply.Options{}, fmt.Errorf("unknown component %q (one of %s)", component, strings.Join(components.Names()[1:], ", "))
	}
	return apply.Options{Mode: plan.ModeRollback, Components: []string{component}, Hosts: hosts}, nil
}

package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/internal/atomicfile"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/spf13/cobra"
)

func newPlanCmd(g *globals) *cobra.Command {
	var (
		o                clusterOptions
		out              string
		detailedExitCode bool
		asJSON           bool
		destroy          bool
		keepData         bool
		rollback         string
		rollbackHosts    []string
	)
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what apply would change on the hosts",
		Long: `Plan connects to every host, reads what clusterctl installed there
(/etc/clusterctl/installed.json) and checks it for drift, computes what the
spec wants, and prints the difference. It changes nothing.

-destroy plans what ` + "`clusterctl destroy`" + ` removes (with -keep-data, what it
keeps); -rollback COMPONENT (with --host) plans what ` + "`clusterctl rollback`" + `
does. A plan of any mode saved with -out is carried out by ` + "`apply FILE`" + `.

Exit codes with -detailed-exitcode: 0 no changes, 1 error, 2 changes present.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			log := stderr
			if !asJSON {
				log = stdout
			}
			opts := apply.Options{Mode: plan.ModeApply}
			switch {
			case destroy && rollback != "":
				return fmt.Errorf("-destroy and -rollback are two different plans: choose one")
			case destroy:
				opts = apply.Options{Mode: plan.ModeDestroy, KeepData: keepData}
			case rollback != "":
				var err error
				if opts, err = rollbackOptions(rollback, rollbackHosts); err != nil {
					return err
				}
			case keepData || len(rollbackHosts) > 0:
				return fmt.Errorf("-keep-data goes with -destroy, --host with -rollback")
			}
			s, err := openSession(ctx, g, &o, log, stderr)
			if err != nil {
				return err
			}
			defer s.Close()
			warnRunning(ctx, s, stderr)
			c, err := s.Plan(ctx, opts)
			if err != nil {
				return err
			}
			if asJSON {
				if err := plan.WriteJSON(stdout, c.Plan); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(stdout)
				if err := plan.WriteText(stdout, c.Plan, plan.TextOptions{Color: !o.spec.noColor && isTerminal(stdout)}); err != nil {
					return err
				}
			}
			if out != "" {
				if err := savePlan(out, c.Plan); err != nil {
					return err
				}
				if !asJSON {
					fmt.Fprintf(stdout, "\nSaved the plan to %s. To carry out exactly these actions, run:\n    clusterctl apply %s\n", out, out)
				}
			}
			if detailedExitCode && c.Plan.HasChanges() {
				return silentExit(2)
			}
			return nil
		},
	}
	addClusterFlags(cmd.Flags(), &o)
	cmd.Flags().StringVar(&out, "out", "", "save the plan to `FILE` for `clusterctl apply FILE`")
	cmd.Flags().BoolVar(&detailedExitCode, "detailed-exitcode", false, "exit 2 when there are changes, 0 when there are none")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&destroy, "destroy", false, "plan the removal of everything clusterctl installed (what `clusterctl destroy` does)")
	cmd.Flags().BoolVar(&keepData, "keep-data", false, "with -destroy: keep etcd's data, containerd's images, etcd snapshots and the local PKI")
	cmd.Flags().StringVar(&rollback, "rollback", "", "plan putting `COMPONENT` back on its previous generation (what `clusterctl rollback` does)")
	cmd.Flags().StringSliceVar(&rollbackHosts, "host", nil, "with -rollback: only on these hosts (repeatable)")
	return cmd
}

// savePlan writes the plan file atomically, 0600: it names hosts and
// versions, never secrets.
func savePlan(path string, p *plan.Plan) error {
	var b bytes.Buffer
	if err := plan.WriteJSON(&b, p); err != nil {
		return err
	}
	if err := atomicfile.Write(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	return nil
}

func loadPlan(path string) (*plan.Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := plan.ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

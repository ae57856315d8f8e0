package main

import (
	"fmt"

	"github.com/clusterctl/clusterctl/spec"
	"github.com/spf13/cobra"
)

func newValidateCmd(g *globals) *cobra.Command {
	var o specOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check the spec: syntax, types, references and the cluster rules",
		Long: `Validate reads every *.hcl file in the spec folder (-chdir, default the current
folder) as one spec, resolves variables and checks it without contacting any host.
It exits 0 when the spec is valid (warnings allowed) and 1 when it has errors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			c, diags := spec.Load(g.chdir, o.vars)
			if asJSON {
				out := struct {
					Valid        bool             `json:"valid"`
					ErrorCount   int              `json:"error_count"`
					WarningCount int              `json:"warning_count"`
					Diagnostics  []jsonDiagnostic `json:"diagnostics"`
				}{Valid: !diags.HasErrors(), ErrorCount: len(diags.Errs()), WarningCount: len(diags) - len(diags.Errs()),
					Diagnostics: newDiagWriter(nil, g.chdir, false).toJSON(diags)}
				if err := writeJSON(stdout, out); err != nil {
					return err
				}
				if !out.Valid {
					return silentExit(1)
				}
				return nil
			}
			newDiagWriter(stderr, g.chdir, !o.noColor && isTerminal(stderr)).write(diags)
			if diags.HasErrors() {
				return silentExit(1)
			}
			warnings := ""
			if n := len(diags); n > 0 {
				warnings = fmt.Sprintf(", with %d warning%s", n, plural(n))
			}
			fmt.Fprintf(stdout, "Success! The spec is valid%s: cluster %q, Kubernetes %s, %d host%s.\n",
				warnings, c.Name(), c.KubernetesVersion(), len(c.Hosts()), plural(len(c.Hosts())))
			return nil
		},
	}
	addSpecFlags(cmd.Flags(), &o)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result and diagnostics as JSON on stdout")
	return cmd
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

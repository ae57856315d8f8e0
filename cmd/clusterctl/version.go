package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is stamped at link time: -ldflags "-X main.buildVersion=v0.1.0".
// It is the only package-level variable, because the linker can only set those.
var buildVersion = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the clusterctl version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						rev = " (" + s.Value[:12] + ")"
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "clusterctl %s%s %s/%s %s\n", buildVersion, rev, runtime.GOOS, runtime.GOARCH, runtime.Version())
			return nil
		},
	}
}

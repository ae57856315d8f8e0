package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/internal/atomicfile"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/spf13/cobra"
)

func newKubeconfigCmd(g *globals) *cobra.Command {
	var (
		o     clusterOptions
		out   string
		merge bool
	)
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print or write the cluster's admin kubeconfig",
		Long: `Kubeconfig renders the admin kubeconfig from the local PKI (created by apply).
Without -o it prints it; with -o FILE it writes FILE (0600); with --merge it
adds the cluster, user and context to FILE (default ~/.kube/config), keeping
what is there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadSpec(g, &o.spec, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			table, err := pki.NewTable(components.PKICluster(c))
			if err != nil {
				return err
			}
			store := pki.DirStore{Root: o.store(g).PKIDir()}
			data, err := pki.RenderKubeconfig(store, table, pki.KubeconfigAdmin)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no certificates in %s yet: run `clusterctl apply` first", store.Root)
			}
			if err != nil {
				return err
			}
			if merge && out == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return err
				}
				out = filepath.Join(home, ".kube", "config")
			}
			switch {
			case out == "":
				_, err = cmd.OutOrStdout().Write(data)
				return err
			case merge:
				existing, err := os.ReadFile(out)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				merged, err := mergeKubeconfig(existing, data)
				if err != nil {
					return fmt.Errorf("merge into %s: %w", out, err)
				}
				data = merged
			}
			if err := writePrivate(out, data); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Wrote the admin kubeconfig of cluster %q to %s\n", c.Name(), out)
			return nil
		},
	}
	addSpecFlags(cmd.Flags(), &o.spec)
	cmd.Flags().StringVar(&o.stateDir, "state-dir", "", "state folder (default: .clusterctl in the spec folder)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to `FILE` (0600) instead of printing")
	cmd.Flags().BoolVar(&merge, "merge", false, "merge into FILE (default ~/.kube/config) instead of replacing it")
	return cmd
}

// writePrivate writes a file 0600 (it holds a private key), atomically.
func writePrivate(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

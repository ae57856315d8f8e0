package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/spf13/cobra"
)

func newDestroyCmd(g *globals) *cobra.Command {
	var (
		o           clusterOptions
		autoApprove bool
		keepData    bool
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Remove everything clusterctl installed on the hosts of the spec",
		Long: `Destroy stops and removes every component clusterctl installed on the hosts
of the spec, in the reverse of the rollout order (kube-proxy and kubelet,
controller-manager and scheduler, kube-apiserver, etcd; the pod network and
containerd after the kubelet of their host, the agent last), with what they
left behind: pods, volume mounts, iptables chains, pod routes and the
bridge, data folders, binaries, configuration, certificates and logs. It
shows what will go and asks for approval (unless -auto-approve). It is
` + "`plan -destroy`" + ` and ` + "`apply`" + ` in one: ` + "`plan -destroy -out F`" + ` then
` + "`apply F`" + ` does the same.

-keep-data keeps etcd's data, containerd's images, the etcd snapshots on the
hosts and the local PKI, so that a later apply brings the same cluster back.
Without it, the local state folder is moved aside to
.clusterctl.destroyed-<time> (the old CA and snapshots stay recoverable there)
and the next apply makes a new cluster.

Running it again, or on hosts without clusterctl, says there is nothing to
destroy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := run{opts: apply.Options{Mode: plan.ModeDestroy, KeepData: keepData}, autoApprove: autoApprove, asJSON: asJSON, done: retireState}
			return r.exec(cmd.Context(), g, &o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	addClusterFlags(cmd.Flags(), &o)
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "skip the interactive approval")
	cmd.Flags().BoolVar(&keepData, "keep-data", false, "keep etcd's data, containerd's images, etcd snapshots and the local PKI")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable events (JSON lines) instead of text")
	return cmd
}

// retireState ends the local state after a destroy: kept with -keep-data
// (the next apply reuses the PKI with the kept data) or while it records
// hosts the spec no longer names; otherwise moved aside.
func retireState(s *apply.Session, c *apply.Computed, lockID string, stdout io.Writer) (bool, error) {
	st, err := s.Store.Read()
	if err != nil {
		return false, err
	}
	var notInSpec []string
	if st != nil {
		for _, name := range st.HostNames() {
			if _, ok := s.Cluster.Host(name); !ok {
				notInSpec = append(notInSpec, name)
			}
		}
	}
	switch {
	case len(notInSpec) > 0:
		fmt.Fprintf(stdout, "\nThe local state in %s is kept: it records hosts the spec no longer names (%s); destroy reaches only the spec's hosts.\n", s.Store.Dir, strings.Join(notInSpec, ", "))
	case c.Plan.KeepData:
		fmt.Fprintf(stdout, "\nThe local state in %s keeps the PKI and the etcd snapshots: the next apply reuses them with the kept data.\n", s.Store.Dir)
	default:
		dest, err := apply.RetireState(s.Store, lockID, time.Now())
		if err != nil {
			return dest != "", err
		}
		if dest != "" {
			fmt.Fprintf(stdout, "\nThe local state was moved to %s: it keeps the old CA, the journal and the etcd snapshots. The next apply makes a new cluster; delete the folder when you no longer need it.\n", dest)
			return true, nil // the lock moved with the folder
		}
	}
	return false, nil
}

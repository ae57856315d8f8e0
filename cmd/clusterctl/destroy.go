package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/state"
	"github.com/spf13/cobra"
)

func newDestroyCmd(g *globals) *cobra.Command {
	var (
		o           clusterOptions
		autoApprove bool
		keepData    bool
	)
	cmd := &cobra.Command{
		Use:   "destroy",
		Short: "Remove everything clusterctl installed on the hosts of the spec",
		Long: `Destroy stops and removes every component clusterctl installed on the hosts
of the spec, in the reverse of the rollout order (kube-proxy and kubelet,
controller-manager and scheduler, kube-apiserver, etcd, the pod network and
containerd, the agent last), with what they left behind: pods, volume
mounts, iptables chains, pod routes and the bridge, data folders, binaries,
configuration, certificates and logs. It shows what will go and asks for
approval (unless -auto-approve).

-keep-data keeps etcd's data, containerd's images, the etcd snapshots on the
hosts and the local PKI, so that a later apply brings the same cluster back.
Without it, the local state folder is moved aside to
.clusterctl.destroyed-<time> (the old CA and snapshots stay recoverable there)
and the next apply makes a new cluster.

Running it again, or on hosts without clusterctl, says there is nothing to
destroy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDestroy(cmd.Context(), g, &o, autoApprove, components.UninstallOptions{KeepData: keepData},
				cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	addSpecFlags(cmd.Flags(), &o.spec)
	cmd.Flags().IntVar(&o.parallelism, "parallelism", 10, "how many hosts to work on at once")
	cmd.Flags().StringVar(&o.stateDir, "state-dir", "", "state folder (default: .clusterctl in the spec folder)")
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "skip the interactive approval")
	cmd.Flags().BoolVar(&keepData, "keep-data", false, "keep etcd's data, containerd's images, etcd snapshots and the local PKI")
	return cmd
}

func runDestroy(ctx context.Context, g *globals, o *clusterOptions, autoApprove bool, opts components.UninstallOptions, stdout, stderr io.Writer) error {
	ctx, stop, release := gracefulStop(ctx, stderr)
	defer release()

	s, err := openSession(ctx, g, o, stdout, stderr)
	if err != nil {
		return err
	}
	defer s.Close()
	lock, err := s.Store.Lock("destroy")
	if err != nil {
		return err
	}
	locked := true
	defer func() {
		if !locked {
			return
		}
		if err := s.Store.Unlock(lock.ID); err != nil {
			fmt.Fprintf(stderr, "Error: release the state lock: %v\n", err)
		}
		os.Remove(s.Store.Dir) // only when empty: the lock made it
	}()

	dp, err := s.PlanDestroy(ctx, opts)
	if err != nil {
		return err
	}
	color := !o.spec.noColor && isTerminal(stdout)
	if dp.Empty() {
		fmt.Fprintf(stdout, "\nNo clusterctl components or files on the %d hosts of the spec: nothing to destroy.\n", len(s.Cluster.Hosts()))
		writeNotInSpec(stdout, dp)
		return nil
	}
	writeDestroyPlan(stdout, dp, color)
	if !autoApprove {
		ok, err := confirmDestroy(g.stdin, stdout)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(stdout, "\nDestroy cancelled.")
			return silentExit(1)
		}
	}
	fmt.Fprintln(stdout)
	sum, err := s.Destroy(ctx, dp, lock.ID, stop)
	writeDestroySummary(stdout, dp, sum)
	if err != nil {
		if errors.Is(err, apply.ErrInterrupted) {
			fmt.Fprintln(stdout, "\nStopped before finishing. Run `clusterctl destroy` again to remove what is left.")
		} else {
			fmt.Fprintln(stdout, "\nNothing after the failed step was removed. Fix the cause and run `clusterctl destroy` again: it removes what is left.")
		}
		return silentExitWith(1, err)
	}

	// The local state.
	switch {
	case len(dp.NotInSpec) > 0:
		fmt.Fprintf(stdout, "\nThe local state in %s is kept: it records hosts the spec no longer names (%s).\n", s.Store.Dir, strings.Join(dp.NotInSpec, ", "))
	case opts.KeepData:
		fmt.Fprintf(stdout, "\nThe local state in %s keeps the PKI and the etcd snapshots: the next apply reuses them with the kept data.\n", s.Store.Dir)
	default:
		dest, err := apply.RetireState(s.Store, lock.ID, time.Now())
		if dest != "" {
			locked = false // the lock moved with the folder
		}
		if err != nil {
			return err
		}
		if dest != "" {
			fmt.Fprintf(stdout, "\nThe local state was moved to %s: it keeps the old CA, the journal and the etcd snapshots. The next apply makes a new cluster; delete the folder when you no longer need it.\n", dest)
		}
	}
	return nil
}

// writeDestroyPlan shows every component that will be removed, host by
// host, the order, and what is kept.
func writeDestroyPlan(w io.Writer, dp *apply.DestroyPlan, color bool) {
	minus := "-"
	if color {
		minus = "\x1b[31m-\x1b[0m"
	}
	fmt.Fprintf(w, "\nclusterctl will destroy everything it installed on these hosts (symbols: %s destroy):\n", minus)
	for _, h := range dp.Hosts {
		for _, c := range h.Components {
			fmt.Fprintf(w, "\n  # %s will be destroyed\n", address(c.Name, h.Host))
			fmt.Fprintf(w, "  %s component %q on %q {\n", minus, c.Name, h.Host)
			if c.Version != "" {
				fmt.Fprintf(w, "      %s version = %q\n", minus, c.Version)
			}
			if c.Name == components.AgentComponent {
				fmt.Fprintf(w, "      %s files   = %q\n", minus, strings.Join(hostFiles(dp.Options), ", "))
			}
			fmt.Fprintln(w, "    }")
		}
	}
	fmt.Fprintln(w, "\nDestroy order:")
	for i, st := range dp.Order() {
		fmt.Fprintf(w, "  %2d. %s %s on %s\n", i+1, minus, strings.Join(st.Components, ", "), strings.Join(st.Hosts, ", "))
	}
	if dp.Options.KeepData {
		var kept []string
		for _, h := range dp.Hosts {
			for _, k := range h.Kept {
				kept = append(kept, k+" on "+h.Host)
			}
		}
		kept = append(kept, "the etcd snapshots in "+components.SnapshotDir, "the local PKI")
		fmt.Fprintf(w, "\nKept (-keep-data): %s.\n", strings.Join(kept, "; "))
	}
	writeNotInSpec(w, dp)
	hosts := "hosts"
	if len(dp.Hosts) == 1 {
		hosts = "host"
	}
	fmt.Fprintf(w, "\nDestroy: %d components on %d %s.\n", dp.Count(), len(dp.Hosts), hosts)
}

func writeNotInSpec(w io.Writer, dp *apply.DestroyPlan) {
	if len(dp.NotInSpec) > 0 {
		fmt.Fprintf(w, "\nNot touched: %s (in the local state, not in the spec: destroy reaches only the spec's hosts).\n", strings.Join(dp.NotInSpec, ", "))
	}
}

func address(component, host string) string { return fmt.Sprintf("component.%s[%q]", component, host) }

// hostFiles are the host paths the agent's removal clears.
func hostFiles(o components.UninstallOptions) []string {
	fs := []string{"/opt/clusterctl", components.ConfigRoot, pki.HostPKIDir, pki.HostKubeDir + "/*.conf", components.LogDir, components.RunDir}
	if !o.KeepData {
		fs = append(fs, components.SnapshotDir+"/etcd-<cluster>-*.db")
	}
	return fs
}

func confirmDestroy(stdin io.Reader, stdout io.Writer) (bool, error) {
	if f, ok := stdin.(*os.File); !ok || !isTerminalFile(f) {
		return false, errors.New("destroy needs approval: run it in a terminal, or pass -auto-approve")
	}
	fmt.Fprint(stdout, "\nDo you really want to destroy everything clusterctl installed on these hosts?\n  There is no undo. Only 'yes' will be accepted to confirm.\n\n  Enter a value: ")
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("read approval: %w", err)
	}
	return strings.TrimSpace(line) == "yes", nil
}

func writeDestroySummary(w io.Writer, dp *apply.DestroyPlan, sum apply.DestroySummary) {
	done, failed, skipped := 0, 0, 0
	for _, o := range sum.Result.Outcomes {
		switch o.Status {
		case state.StepDone:
			done++
		case state.StepFailed:
			failed++
		case state.StepSkipped:
			skipped++
		}
	}
	if failed == 0 && skipped == 0 && !sum.Result.Interrupted {
		fmt.Fprintf(w, "\nDestroy complete in %s: %d components removed on %d hosts.\n", sum.Elapsed.Round(100*time.Millisecond), done, len(dp.Hosts))
		return
	}
	fmt.Fprintf(w, "\nDestroy finished in %s: %d removed, %d failed, %d skipped.\n", sum.Elapsed.Round(100*time.Millisecond), done, failed, skipped)
	for _, o := range sum.Result.Outcomes {
		if o.Status == state.StepFailed {
			fmt.Fprintf(w, "\nFailed: %s on %s\n  %s\n", o.Step.Component, strings.Join(o.Step.Hosts, ", "),
				strings.ReplaceAll(o.Err.Error(), "\n", "\n  "))
		}
	}
	var skippedSteps []string
	for _, o := range sum.Result.Outcomes {
		if o.Status == state.StepSkipped {
			skippedSteps = append(skippedSteps, o.Step.Component+" on "+strings.Join(o.Step.Hosts, ", "))
		}
	}
	if len(skippedSteps) > 0 {
		fmt.Fprintf(w, "Skipped (after a failure): %s\n", strings.Join(skippedSteps, "; "))
	}
}

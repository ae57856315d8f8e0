package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/spf13/cobra"
)

// hostStatus is one host in `clusterctl status -json`.
type hostStatus struct {
	Host       string                  `json:"host"`
	Address    string                  `json:"address"`
	Reachable  bool                    `json:"reachable"`
	Error      string                  `json:"error,omitempty"`
	Agent      *agent.AgentInfo        `json:"agent,omitempty"`
	Components []agent.ComponentStatus `json:"components,omitempty"`
}

func newStatusCmd(g *globals) *cobra.Command {
	var (
		o      clusterOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every component on every host as its agent sees it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := checkParallelism(o.parallelism); err != nil {
				return err
			}
			c, err := loadSpec(g, &o.spec, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			hosts := c.Hosts()
			out := make([]hostStatus, len(hosts))
			provision.ForEach(ctx, hosts, o.parallelism, func(ctx context.Context, i int, h spec.Host) error {
				hs := &out[i]
				*hs = hostStatus{Host: h.Name, Address: h.Address}
				cfg := apply.SSHConfig(h)
				cfg.Passphrase = g.passphrase.ask
				cl, err := provision.Dial(ctx, cfg)
				if err != nil {
					hs.Error = err.Error()
					return nil
				}
				defer cl.Close()
				hs.Reachable = true
				resp, err := agentStatus(ctx, cl)
				if err != nil {
					hs.Error = err.Error()
					return nil
				}
				hs.Agent, hs.Components = resp.Agent, resp.Components
				return nil
			})
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			writeStatus(cmd.OutOrStdout(), out)
			for _, hs := range out {
				if hs.Error != "" {
					return silentExit(1)
				}
			}
			return nil
		},
	}
	addSpecFlags(cmd.Flags(), &o.spec)
	cmd.Flags().IntVar(&o.parallelism, "parallelism", 10, "how many hosts to ask at once")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// agentStatus asks a host's agent for its status over SSH.
func agentStatus(ctx context.Context, cl *provision.Client) (agent.Response, error) {
	return components.AgentClient{H: apply.HostOf(cl)}.Status(ctx)
}

func writeStatus(w io.Writer, hosts []hostStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCOMPONENT\tVERSION\tGEN\tSTATE\tHEALTHY\tRESTARTS\tSINCE")
	for _, hs := range hosts {
		if hs.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t\t\t%s\t\t\t\n", hs.Host, oneLine(hs.Error))
			continue
		}
		comps := slices.Clone(hs.Components)
		slices.SortFunc(comps, func(a, b agent.ComponentStatus) int { return strings.Compare(a.Name, b.Name) })
		if len(comps) == 0 {
			fmt.Fprintf(tw, "%s\t(none)\t\t\t\t\t\t\n", hs.Host)
		}
		for _, c := range comps {
			since := ""
			if c.Since != nil {
				since = time.Since(*c.Since).Round(time.Second).String() + " ago"
			}
			healthy := "yes"
			if !c.Healthy {
				healthy = "no"
				if c.ProbeError != "" {
					healthy = "no: " + oneLine(c.ProbeError)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", hs.Host, c.Name, c.Version, c.Generation, c.State, healthy, c.Restarts, since)
		}
	}
	tw.Flush()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

func newLogsCmd(g *globals) *cobra.Command {
	var (
		o      clusterOptions
		lines  int
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs HOST COMPONENT",
		Short: "Print a component's log on a host (-f follows it)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines < 0 {
				return fmt.Errorf("-n/--lines %d is out of range: it must be 0 or more (how many of the last lines to print; 0 with -f prints only new lines)", lines)
			}
			c, err := loadSpec(g, &o.spec, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			h, ok := c.Host(args[0])
			if !ok {
				return fmt.Errorf("no host %q in the spec", args[0])
			}
			if args[1] != components.AgentComponent && !slices.Contains(components.Names(), args[1]) {
				return fmt.Errorf("unknown component %q (one of %s)", args[1], strings.Join(components.Names(), ", "))
			}
			cfg := apply.SSHConfig(h)
			cfg.Passphrase = g.passphrase.ask
			cl, err := provision.Dial(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer cl.Close()
			err = followLogs(cmd.Context(), components.AgentClient{H: apply.HostOf(cl)}, args[1], lines, follow, time.Second, cmd.OutOrStdout())
			if err != nil && cmd.Context().Err() != nil {
				return nil // Ctrl-C while following
			}
			return err
		},
	}
	addSpecFlags(cmd.Flags(), &o.spec)
	cmd.Flags().IntVarP(&lines, "lines", "n", 100, "print the last `N` lines")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what is appended")
	return cmd
}

// followLogs prints the last lines of a component's log through the agent
// client and, with follow, what is appended, asking every so often.
func followLogs(ctx context.Context, ac components.AgentClient, component string, lines int, follow bool, every time.Duration, w io.Writer) error {
	// The agent takes 0 lines for its default, 100: ask for one and drop
	// it, only the offset is wanted.
	tail, off, err := ac.Logs(ctx, component, max(lines, 1))
	if err != nil {
		return err
	}
	if lines == 0 {
		tail = nil
	}
	for {
		for _, l := range tail {
			if _, err := fmt.Fprintln(w, l); err != nil {
				return err
			}
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
		if tail, off, err = ac.LogsAfter(ctx, component, off); err != nil {
			return err
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/agent"
)

// newAgentCmd is the on-host side: "clusterctl agent ..." runs on each
// cluster host, started by apply over SSH. docs/agent.md is the contract.
func newAgentCmd() *cobra.Command {
	paths := agent.DefaultPaths()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "The on-host supervisor of the cluster components (runs on each host)",
		Args:  cobra.NoArgs,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&paths.ConfigRoot, "config-root", paths.ConfigRoot, "`DIR` with <component>/<generation>/unit.json and <component>/current")
	pf.StringVar(&paths.RunDir, "run-dir", paths.RunDir, "`DIR` for the control socket and pid records")
	pf.StringVar(&paths.LogDir, "log-dir", paths.LogDir, "`DIR` for component logs")
	cmd.AddCommand(
		newAgentRunCmd(&paths),
		newAgentStartCmd(&paths),
		newAgentStopCmd(&paths),
		newAgentInstallUnitCmd(&paths),
		newAgentCtlCmd(&paths),
		newAgentCallCmd(&paths),
	)
	cmd.AddCommand(newAgentNodeCmds()...)
	return cmd
}

func newAgentRunCmd(paths *agent.Paths) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground (systemd's ExecStart; 'agent start' for the rest)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			a := agent.New(agent.Options{
				Paths:   *paths,
				Logger:  slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)),
				Version: buildVersion,
			})
			// SIGHUP reloads, so a hangup never ends the agent; SIGPIPE is
			// taken so that a vanished stderr returns EPIPE instead of
			// killing it. SIGINT and SIGTERM (main) stop the agent only.
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGHUP, syscall.SIGPIPE)
			defer signal.Stop(sigs)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case s := <-sigs:
						if s == syscall.SIGHUP {
							a.Reload(ctx)
						}
					}
				}
			}()
			return a.Run(ctx)
		},
	}
}

// agentRunArgs are the arguments that make this binary run the agent in
// the foreground with the same folders.
func agentRunArgs(p agent.Paths) []string {
	return []string{"agent", "run", "--config-root", p.ConfigRoot, "--run-dir", p.RunDir, "--log-dir", p.LogDir}
}

func agentSelfExe() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(exe)
}

func newAgentStartCmd(paths *agent.Paths) *cobra.Command {
	var mode string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start the agent in the background if it is not running this binary already (upgrades keep components running)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return agentStart(cmd, *paths, mode, asJSON)
		},
	}
	cmd.Flags().StringVar(&mode, "mode", agent.ModeAuto, "auto, systemd or detached (auto: systemd where it is PID 1)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func agentStart(cmd *cobra.Command, p agent.Paths, mode string, asJSON bool) error {
	exe, err := agentSelfExe()
	if err != nil {
		return err
	}
	res, err := agent.Start(cmd.Context(), agent.StartOptions{Paths: p, Exe: exe, Args: agentRunArgs(p), Mode: mode})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		return agentWriteJSON(out, res)
	}
	switch res.Action {
	case "none":
		fmt.Fprintf(out, "agent already running (%s, pid %d)\n", res.Mode, res.PID)
	case "upgraded":
		fmt.Fprintf(out, "agent upgraded (%s, pid %d); components adopted\n", res.Mode, res.PID)
	default:
		fmt.Fprintf(out, "agent started (%s, pid %d)\n", res.Mode, res.PID)
	}
	return nil
}

func newAgentInstallUnitCmd(paths *agent.Paths) *cobra.Command {
	var unitPath string
	var noStart bool
	cmd := &cobra.Command{
		Use:   "install-unit",
		Short: "Write, enable and start the systemd service " + agent.SystemdUnitName + " (KillMode=process)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := agentSelfExe()
			if err != nil {
				return err
			}
			if noStart {
				changed, err := agent.InstallSystemdUnit(unitPath, exe, agentRunArgs(*paths))
				if err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%s installed (changed: %t)\n", unitPath, changed)
				}
				return err
			}
			res, err := agent.Start(cmd.Context(), agent.StartOptions{
				Paths: *paths, Exe: exe, Args: agentRunArgs(*paths), Mode: agent.ModeSystemd, UnitPath: unitPath,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s installed; agent %s (pid %d)\n", unitPath, map[string]string{"none": "already running", "started": "started", "upgraded": "upgraded"}[res.Action], res.PID)
			return nil
		},
	}
	cmd.Flags().StringVar(&unitPath, "unit-path", agent.DefaultSystemdUnitPath, "service `FILE` to write")
	cmd.Flags().BoolVar(&noStart, "no-start", false, "write and enable the service without starting it")
	return cmd
}

func newAgentStopCmd(paths *agent.Paths) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the agent; the components keep running (use 'agent ctl stop NAME' to stop one)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := agent.StopAgent(cmd.Context(), *paths, ""); err != nil {
				return agentNotRunningHint(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "agent stopped; components keep running")
			return nil
		},
	}
}

func newAgentCtlCmd(paths *agent.Paths) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Talk to the running agent over its control socket",
		Args:  cobra.NoArgs,
	}
	client := func() agent.Client { return agent.Client{Socket: paths.Socket()} }
	var asJSON bool

	status := &cobra.Command{
		Use:   "status",
		Short: "Show every component: generation, state, pid, health, restarts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := client().Status(cmd.Context())
			if err != nil {
				return agentNotRunningHint(err)
			}
			if asJSON {
				return agentWriteJSON(cmd.OutOrStdout(), resp)
			}
			return agent.WriteStatus(cmd.OutOrStdout(), resp.Components, time.Now())
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the agent's response as JSON")

	reload := &cobra.Command{
		Use:   "reload",
		Short: "Re-read every component's current generation: start new, restart changed, stop removed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := client().Reload(cmd.Context())
			return agentCtlResult(cmd, resp, err, asJSON)
		},
	}
	reload.Flags().BoolVar(&asJSON, "json", false, "print the agent's response as JSON")

	one := func(use, short string, call func(agent.Client, context.Context, string) (agent.Response, error)) *cobra.Command {
		c := &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				resp, err := call(client(), cmd.Context(), args[0])
				return agentCtlResult(cmd, resp, err, asJSON)
			},
		}
		c.Flags().BoolVar(&asJSON, "json", false, "print the agent's response as JSON")
		return c
	}

	cmd.AddCommand(status, reload,
		one("restart", "Stop a component and start it again", agent.Client.Restart),
		one("stop", "Stop a component (until start, restart or a changed unit)", agent.Client.Stop),
		one("start", "Start a stopped component", agent.Client.Start),
		newAgentWaitHealthyCmd(client),
		newAgentLogsCmd(paths),
	)
	return cmd
}

func newAgentWaitHealthyCmd(client func() agent.Client) *cobra.Command {
	var gen, successes int
	var timeout time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "wait-healthy NAME",
		Short: "Wait until a component runs a generation and passes its probe several times in a row (the health gate)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := client().WaitHealthy(cmd.Context(), args[0], gen, successes, timeout)
			if asJSON && (err == nil || resp.Error != "") {
				if werr := agentWriteJSON(cmd.OutOrStdout(), resp); werr != nil {
					return werr
				}
				if err != nil {
					return silentExit(1)
				}
				return nil
			}
			if err != nil {
				if len(resp.Log) > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "last log lines of %s:\n", args[0])
					for _, l := range resp.Log {
						fmt.Fprintf(cmd.ErrOrStderr(), "  %s\n", l)
					}
				}
				return agentNotRunningHint(err)
			}
			st := resp.Components[0]
			fmt.Fprintf(cmd.OutOrStdout(), "%s generation %d healthy (pid %d, %d passing probes)\n", st.Name, st.Generation, st.PID, st.Passes)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&gen, "generation", 0, "generation the component must run (0: any)")
	f.IntVar(&successes, "successes", agent.DefaultGateSuccesses, "passing probes in a row required")
	f.DurationVar(&timeout, "timeout", agent.DefaultGateTimeout, "give up after this long")
	f.BoolVar(&asJSON, "json", false, "print the agent's response as JSON")
	return cmd
}

func newAgentLogsCmd(paths *agent.Paths) *cobra.Command {
	var lines int
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a component's log (" + agent.DefaultPaths().LogDir + "/NAME.log); -f follows it across rotations",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if name != "agent" {
				if err := agent.ValidName(name); err != nil {
					return err
				}
			}
			path := paths.LogFile(name)
			st, err := os.Stat(path)
			if err != nil {
				return fmt.Errorf("logs of %s: %w", name, err)
			}
			tail, err := agent.TailLines(path, lines)
			if err != nil {
				return fmt.Errorf("logs of %s: %w", name, err)
			}
			out := cmd.OutOrStdout()
			for _, l := range tail {
				fmt.Fprintln(out, l)
			}
			if !follow {
				return nil
			}
			err = agent.FollowLog(cmd.Context(), path, st.Size(), out, 250*time.Millisecond)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().IntVarP(&lines, "lines", "n", 100, "print the last `N` lines")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what is appended")
	return cmd
}

// agentCtlResult prints a control response: JSON as is, or the change table.
// A failed request exits 1 after printing what the agent said.
func agentCtlResult(cmd *cobra.Command, resp agent.Response, err error, asJSON bool) error {
	if asJSON && (err == nil || resp.Error != "") {
		if werr := agentWriteJSON(cmd.OutOrStdout(), resp); werr != nil {
			return werr
		}
		if err != nil {
			return silentExit(1)
		}
		return nil
	}
	if len(resp.Changes) > 0 {
		if werr := agent.WriteChanges(cmd.OutOrStdout(), resp.Changes); werr != nil {
			return werr
		}
	}
	return agentNotRunningHint(err)
}

func agentNotRunningHint(err error) error {
	if errors.Is(err, agent.ErrNotRunning) {
		return fmt.Errorf("%w (start it with 'clusterctl agent start')", err)
	}
	return err
}

func agentWriteJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

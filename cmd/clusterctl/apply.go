package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/state"
	"github.com/spf13/cobra"
)

func newApplyCmd(g *globals) *cobra.Command {
	var (
		o           clusterOptions
		autoApprove bool
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "apply [PLANFILE]",
		Short: "Make the hosts match the spec",
		Long: `Apply computes a plan like ` + "`clusterctl plan`" + `, shows it, asks for approval (unless
-auto-approve), and carries it out: uploads what is missing, writes
certificates and configs, switches each component to its new generation and
waits for its health gate, rolling back a component whose gate fails.

With PLANFILE (from plan -out) it carries out exactly that plan, and refuses
when the spec, a host or the state changed since it was made.

Ctrl-C lets the running steps finish, saves the state and stops; a second
Ctrl-C aborts at once.

-json prints one JSON object per line instead of text, for CI: the plan
({"type":"plan"}), each step's start and end, each host's change, uploads, the
etcd snapshot, and a summary; it needs -auto-approve or a PLANFILE.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var saved *plan.Plan
			if len(args) == 1 {
				p, err := loadPlan(args[0])
				if err != nil {
					return err
				}
				saved = p
				autoApprove = true // approving the saved plan was the point of saving it
			}
			return runApply(cmd.Context(), g, &o, saved, autoApprove, asJSON, stdout, stderr)
		},
	}
	addClusterFlags(cmd.Flags(), &o)
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "skip the interactive approval")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print machine-readable events (JSON lines) instead of text")
	return cmd
}

// applySummary is the last event of `apply -json`.
type applySummary struct {
	Type     string  `json:"type"` // "summary"
	Done     int     `json:"steps_done"`
	Failed   int     `json:"steps_failed"`
	Skipped  int     `json:"steps_skipped"`
	Uploaded int64   `json:"bytes_uploaded"`
	Seconds  float64 `json:"seconds"`
	HaltedBy string  `json:"halted_by,omitempty"`
	Error    string  `json:"error,omitempty"`
}

func runApply(ctx context.Context, g *globals, o *clusterOptions, saved *plan.Plan, autoApprove, asJSON bool, stdout, stderr io.Writer) error {
	if asJSON && !autoApprove {
		return errors.New("apply -json cannot ask for approval: add -auto-approve, or apply a saved plan file")
	}
	var enc *json.Encoder
	if asJSON {
		enc = json.NewEncoder(stdout)
		stdout = io.Discard // the text; events go to the real stdout
	}
	ctx, stop, release := gracefulStop(ctx, stderr)
	defer release()

	s, err := openSession(ctx, g, o, stdout, stderr)
	if err != nil {
		return err
	}
	defer s.Close()
	if enc != nil {
		s.Events = func(e apply.Event) { enc.Encode(e) }
	}
	lock, err := s.Store.Lock("apply")
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Store.Unlock(lock.ID); err != nil {
			fmt.Fprintf(stderr, "Error: release the state lock: %v\n", err)
		}
	}()

	c, err := s.Plan(ctx)
	if err != nil {
		return err
	}
	color := !o.spec.noColor && isTerminal(stdout)
	if saved != nil {
		if why := saved.Fingerprint.Compare(c.Plan.Fingerprint); len(why) > 0 {
			return fmt.Errorf("the saved plan is stale and was not applied: %s; run `clusterctl plan` again", strings.Join(why, "; "))
		}
	} else {
		fmt.Fprintln(stdout)
		if err := plan.WriteText(stdout, c.Plan, plan.TextOptions{Color: color}); err != nil {
			return err
		}
	}
	if enc != nil {
		enc.Encode(struct {
			Type string     `json:"type"`
			Plan *plan.Plan `json:"plan"`
		}{"plan", c.Plan})
	}
	if !c.Plan.HasChanges() {
		// Nothing to change on the hosts, but a lost state folder is
		// rebuilt from them: the restored PKI and the state file.
		if err := s.SavePKI(c); err != nil {
			return err
		}
		sum, err := s.Apply(ctx, c, lock.ID, stop)
		if enc != nil {
			enc.Encode(summaryEvent(sum, err))
		}
		return err
	}
	if !autoApprove {
		ok, err := confirm(g.stdin, stdout)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(stdout, "\nApply cancelled.")
			return silentExit(1)
		}
	}

	// What is installed is exactly what the approved plan was computed
	// from, certificates included.
	if err := s.SavePKI(c); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	sum, err := s.Apply(ctx, c, lock.ID, stop)
	writeSummary(stdout, c.Plan, sum)
	if enc != nil {
		enc.Encode(summaryEvent(sum, err))
	}
	if err != nil {
		if sum.HaltedBy != nil {
			fmt.Fprintln(stdout, "\nApply stopped after a failed health gate; that component was rolled back to the generation it ran before, and nothing else was started. The hosts keep their versions, so `clusterctl plan` shows what is left.")
		} else if errors.Is(err, apply.ErrInterrupted) {
			fmt.Fprintln(stdout, "\nStopped before finishing. Run `clusterctl apply` again to continue from where the hosts are.")
		}
		return silentExitWith(1, err)
	}
	return nil
}

func confirm(stdin io.Reader, stdout io.Writer) (bool, error) {
	if f, ok := stdin.(*os.File); !ok || !isTerminalFile(f) {
		return false, errors.New("apply needs approval: run it in a terminal, or pass -auto-approve (or a saved plan file)")
	}
	fmt.Fprint(stdout, "\nDo you want to perform these actions?\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ")
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("read approval: %w", err)
	}
	return strings.TrimSpace(line) == "yes", nil
}

func writeSummary(w io.Writer, p *plan.Plan, sum apply.Summary) {
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
	fmt.Fprintf(w, "\nApply finished in %s: %d steps done, %d failed, %d skipped; %s uploaded.\n",
		sum.Elapsed.Round(100*time.Millisecond), done, failed, skipped, apply.HumanBytes(sum.Uploaded))
	for _, o := range sum.Result.Outcomes {
		if o.Status == state.StepFailed {
			fmt.Fprintf(w, "\nFailed: %s on %s\n  %s\n", o.Step.Component, strings.Join(o.Step.Hosts, ", "),
				strings.ReplaceAll(o.Err.Error(), "\n", "\n  "))
		}
	}
	for _, o := range sum.Result.Outcomes {
		if o.Status == state.StepSkipped {
			fmt.Fprintf(w, "Skipped: %s on %s (%v)\n", o.Step.Component, strings.Join(o.Step.Hosts, ", "), o.Err)
		}
	}
	_ = p
}

// silentExitWith exits with code; err has been reported already.
func silentExitWith(code int, err error) error { return &exitError{code: code, quiet: true, err: err} }

func summaryEvent(sum apply.Summary, err error) applySummary {
	e := applySummary{Type: "summary", Uploaded: sum.Uploaded, Seconds: sum.Elapsed.Seconds()}
	for _, o := range sum.Result.Outcomes {
		switch o.Status {
		case state.StepDone:
			e.Done++
		case state.StepFailed:
			e.Failed++
		case state.StepSkipped:
			e.Skipped++
		}
	}
	if sum.HaltedBy != nil {
		e.HaltedBy = sum.HaltedBy.Error()
	}
	if err != nil {
		e.Error = err.Error()
	}
	return e
}

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
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/apply"
	"github.com/clusterctl/clusterctl/hostlease"
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

With PLANFILE (from plan -out, of any mode: apply, -destroy or -rollback) it
carries out exactly the steps stored in the file, and refuses, naming what
changed, when a spec file, a variable, the clusterctl binary, a bundle
artifact, a host or the state changed since it was made.

Ctrl-C lets the running steps finish, saves the state and stops; a second
Ctrl-C aborts at once.

-json prints one JSON object per line instead of text, for CI: the plan
({"type":"plan"}), each step's start and end, each host's change, uploads, the
etcd snapshot, and a summary; it needs -auto-approve or a PLANFILE.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			r := run{opts: apply.Options{Mode: plan.ModeApply}, autoApprove: autoApprove, asJSON: asJSON}
			if len(args) == 1 {
				p, err := loadPlan(args[0])
				if err != nil {
					return err
				}
				r.saved = p
			}
			return r.exec(cmd.Context(), g, &o, stdout, stderr)
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

// run is apply, destroy and rollback: one plan of the mode (or the saved
// plan), shown, approved, and carried out by the one executor, with the
// same progress, -json events and two-stage Ctrl-C.
type run struct {
	opts        apply.Options
	saved       *plan.Plan
	autoApprove bool
	asJSON      bool
	// done runs after a successful run (destroy retires the state).
	done func(s *apply.Session, c *apply.Computed, lockID string, stdout io.Writer) (unlocked bool, err error)
}

func (r run) exec(ctx context.Context, g *globals, o *clusterOptions, stdout, stderr io.Writer) error {
	if r.saved != nil {
		r.opts = apply.SavedOptions(r.saved)
		r.autoApprove = true // approving the saved plan was the point of saving it
		if r.opts.Mode == plan.ModeDestroy {
			r.done = retireState // as `clusterctl destroy` does
		}
	}
	mode := r.opts.Mode
	if r.asJSON && !r.autoApprove {
		return fmt.Errorf("%s -json cannot ask for approval: add -auto-approve, or apply a saved plan file", mode)
	}
	var enc *json.Encoder
	if r.asJSON {
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
	lock, err := takeLock(ctx, s, mode, stderr)
	if err != nil {
		return err
	}
	defer lock.release(stderr)
	stop = stopOnLost(ctx, stop, lock.lost)

	c, err := s.Plan(ctx, r.opts)
	if err != nil {
		return err
	}
	color := !o.spec.noColor && isTerminal(stdout)
	if r.saved != nil {
		if why := apply.Stale(r.saved, c.Plan); len(why) > 0 {
			return fmt.Errorf("the saved plan is stale and was not applied:\n  - %s\nRun `clusterctl plan` again", strings.Join(why, "\n  - "))
		}
		c.Plan = r.saved // carried out exactly as stored
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
		if mode != plan.ModeApply {
			return nil
		}
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
	if !r.autoApprove {
		ok, err := confirm(ctx, stop, g.stdin, stdout, mode)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintf(stdout, "\n%s cancelled.\n", title(mode))
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
		switch {
		case sum.HaltedBy != nil:
			fmt.Fprintf(stdout, "\n%s stopped after a failed health gate; that component was rolled back to the generation it ran before, and nothing else was started. The hosts keep their versions, so `clusterctl plan` shows what is left.\n", title(mode))
		case errors.Is(err, apply.ErrInterrupted):
			fmt.Fprintf(stdout, "\nStopped before finishing. Run `clusterctl %s` again to continue from where the hosts are.\n", mode)
		case mode == plan.ModeDestroy:
			fmt.Fprintln(stdout, "\nNothing after the failed step was removed. Fix the cause and run `clusterctl destroy` again: it removes what is left.")
		}
		return silentExitWith(1, err)
	}
	if r.done != nil {
		unlocked, err := r.done(s, c, lock.ID, stdout)
		lock.gone = unlocked
		return err
	}
	return nil
}

func title(m plan.Mode) string {
	return strings.ToUpper(string(m[:1])) + string(m[1:])
}

// heldLock is the lock of a run: the state lock in the local folder and
// the lease on every host, under the same run ID; released when the run
// ends whichever way, approval refused or not given included.
type heldLock struct {
	state.LockInfo
	store *state.FileStore
	hosts *hostlease.Held
	lost  <-chan struct{} // closed when a renewal finds the lease gone
	mode  plan.Mode
	gone  bool // the lock moved away with the state folder (destroy)
}

// takeLock takes the local state lock first (a second run from this
// folder fails without touching the hosts), then the lease on the hosts
// (a run from another folder or machine fails naming the holder).
func takeLock(ctx context.Context, s *apply.Session, mode plan.Mode, stderr io.Writer) (*heldLock, error) {
	info, err := s.Store.Lock(string(mode))
	if err != nil {
		return nil, err
	}
	holder := hostlease.Holder{ID: info.ID, Who: info.Who, Operation: info.Operation, Started: info.Created, Replaces: info.Replaced}
	var runners []hostlease.Runner
	for _, c := range s.Clients() {
		runners = append(runners, c)
	}
	lostCh := make(chan struct{})
	var lostOnce sync.Once
	lost := func(host string, err error) {
		lostOnce.Do(func() {
			fmt.Fprintf(stderr, "Error: host %s: %v; stopping after the running steps, as after Ctrl-C, since another run may now change this host\n", host, err)
			close(lostCh)
		})
	}
	held, err := hostlease.Locker{}.AcquireAll(ctx, runners, holder, lost)
	if err != nil {
		if uerr := s.Store.Unlock(info.ID); uerr != nil {
			fmt.Fprintf(stderr, "Error: release the state lock: %v\n", uerr)
		}
		return nil, err
	}
	held.Purge = map[string]bool{}
	for _, c := range s.Clients() {
		if _, inSpec := s.Cluster.Host(c.Name()); !inSpec {
			held.Purge[c.Name()] = true // the run removes clusterctl from it: leave no lease folder
		}
	}
	return &heldLock{LockInfo: info, store: s.Store, hosts: held, mode: mode, lost: lostCh}, nil
}

// stopOnLost returns a stop channel closed by the first of stop (Ctrl-C)
// and lost (the host lease was taken away): a run that lost its lease
// starts nothing new.
func stopOnLost(ctx context.Context, stop <-chan struct{}, lost <-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-lost:
		case <-ctx.Done():
			return
		}
		close(out)
	}()
	return out
}

func (l *heldLock) release(stderr io.Writer) {
	herr := l.hosts.Release(l.mode == plan.ModeDestroy)
	if herr != nil {
		fmt.Fprintf(stderr, "Error: release the host lease: %v\n", herr)
	}
	if l.gone {
		return
	}
	// The next run from this folder takes over what could not be released
	// (a host rebooting, a link down) instead of waiting for it to expire.
	if herr != nil {
		if err := l.store.NoteUnreleased(l.ID); err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", err)
		}
	} else if err := l.store.ClearUnreleased(); err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
	}
	if err := l.store.Unlock(l.ID); err != nil {
		fmt.Fprintf(stderr, "Error: release the state lock: %v\n", err)
	}
	if l.mode == plan.ModeDestroy {
		os.Remove(l.store.Dir) // only when empty: the lock made it
	}
}

// maxAnswer bounds what is read for the approval: one line of a few
// words, so that a stream without newlines cannot fill the memory.
const maxAnswer = 4 << 10

// confirm asks for approval on the terminal. A first Ctrl-C (stop) or a
// cancelled ctx at the prompt is a refusal.
func confirm(ctx context.Context, stop <-chan struct{}, stdin io.Reader, stdout io.Writer, mode plan.Mode) (bool, error) {
	if !isTerminalReader(stdin) {
		return false, fmt.Errorf("%s needs approval and standard input is not a terminal, so nothing was %s: run it in a terminal and answer yes, or pass -auto-approve (or a saved plan file)", mode, pastTense(mode))
	}
	q := "Do you want to perform these actions?"
	if mode == plan.ModeDestroy {
		q = "Do you really want to destroy everything clusterctl installed on these hosts?\n  There is no undo."
	}
	fmt.Fprintf(stdout, "\n%s\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ", q)
	type answer struct {
		yes bool
		err error
	}
	// The read cannot be interrupted: it is left behind on Ctrl-C, and
	// the process ends soon after.
	got := make(chan answer, 1)
	go func() {
		yes, err := readApproval(stdin, mode)
		got <- answer{yes, err}
	}()
	select {
	case a := <-got:
		return a.yes, a.err
	case <-stop:
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout)
	return false, nil
}

// readApproval reads one answer line of at most maxAnswer bytes and
// reports whether it is "yes".
func readApproval(r io.Reader, mode plan.Mode) (bool, error) {
	line, err := bufio.NewReader(io.LimitReader(r, maxAnswer+1)).ReadString('\n')
	switch {
	case len(line) > maxAnswer:
		return false, fmt.Errorf("the answer to the approval is longer than %d bytes, so nothing was %s: answer yes, or pass -auto-approve", maxAnswer, pastTense(mode))
	case errors.Is(err, io.EOF) && strings.TrimSpace(line) == "":
		return false, fmt.Errorf("no answer to the approval was given (the input ended), so nothing was %s: answer yes at the prompt, or pass -auto-approve (or a saved plan file)", pastTense(mode))
	case err != nil && !errors.Is(err, io.EOF):
		return false, fmt.Errorf("read the answer to the approval: %w", err)
	}
	return strings.TrimSpace(line) == "yes", nil
}

func pastTense(m plan.Mode) string {
	switch m {
	case plan.ModeDestroy:
		return "destroyed"
	case plan.ModeRollback:
		return "rolled back"
	}
	return "applied"
}

func writeSummary(w io.Writer, p *plan.Plan, sum apply.Summary) {
	n := sum.Result.Count()
	complete := n.Failed == 0 && n.Skipped == 0 && !sum.Result.Interrupted
	elapsed := sum.Elapsed.Round(100 * time.Millisecond)
	switch {
	case p.Mode == plan.ModeDestroy && complete:
		fmt.Fprintf(w, "\nDestroy complete in %s: %d components removed on %d hosts.\n", elapsed, n.Changes, n.Hosts)
	case p.Mode == plan.ModeRollback && complete:
		fmt.Fprintf(w, "\nRollback complete in %s: %d components rolled back on %d hosts. The spec still asks for what was rolled back: `clusterctl plan` shows it as pending.\n", elapsed, n.Changes, n.Hosts)
	default:
		fmt.Fprintf(w, "\n%s finished in %s: %d steps done, %d failed, %d skipped; %s uploaded.\n",
			title(p.Mode), elapsed, n.Done, n.Failed, n.Skipped, apply.HumanBytes(sum.Uploaded))
	}
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
}

// silentExitWith exits with code; err has been reported already.
func silentExitWith(code int, err error) error { return &exitError{code: code, quiet: true, err: err} }

func summaryEvent(sum apply.Summary, err error) applySummary {
	n := sum.Result.Count()
	e := applySummary{Type: "summary", Done: n.Done, Failed: n.Failed, Skipped: n.Skipped, Uploaded: sum.Uploaded, Seconds: sum.Elapsed.Seconds()}
	if sum.HaltedBy != nil {
		e.HaltedBy = sum.HaltedBy.Error()
	}
	if err != nil {
		e.Error = err.Error()
	}
	return e
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code without an extra message: the
// command has already written what the user needs to see.
type exitError struct {
	code  int
	err   error
	quiet bool // err was already reported to the user
}

func (e *exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

func (e *exitError) Unwrap() error { return e.err }

// silentExit returns an error that makes the process exit with code without
// printing anything more.
func silentExit(code int) error { return &exitError{code: code} }

// exitCode maps an error from Run to the process exit code, printing it
// unless it is a silent exit. 0 ok, 1 error, 2 changes present (plan
// -detailed-exitcode).
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && !ee.quiet {
			fmt.Fprintf(stderr, "Error: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	return 1
}

// globals are the flags every command shares.
type globals struct {
	chdir string    // folder holding the spec (*.hcl), like Terraform's -chdir
	stdin io.Reader // for approvals; os.Stdin
	// passphrase asks for identity-file passphrases on the terminal, once
	// per file.
	passphrase *passphrasePrompt
}

// Run is the testable entry point: it parses args and runs one command,
// writing to stdout and stderr only.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{chdir: ".", stdin: os.Stdin, passphrase: &passphrasePrompt{}}
	root := &cobra.Command{
		Use:           "clusterctl",
		Short:         "Plan and apply Kubernetes clusters over SSH",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.chdir, "chdir", ".", "switch to `DIR` before doing anything: the spec is every *.hcl file there")

	// One line per command; each command lives in its own file.
	root.AddCommand(
		newVersionCmd(),
		newPlanCmd(g),
		newApplyCmd(g),
		newDestroyCmd(g),
		newKubeconfigCmd(g),
		newForceUnlockCmd(g),
		newStatusCmd(g),
		newLogsCmd(g),
		newRollbackCmd(g),
		newSSHCmd(g),
		newBundleCmd(),
		newValidateCmd(g),
		newFmtCmd(g),
		newInitCmd(g),
		newAgentCmd(),
		newLabCmd(),
	)
	requireSubcommand(root)
	root.SetArgs(normalizeArgs(args))
	return root.ExecuteContext(ctx)
}

// requireSubcommand makes root and every command that only groups others
// (bundle, lab, agent, ...) fail on an argument that names none of them:
// cobra would print the help and exit 0, hiding a typo in a script. With
// no argument they print their help, as before.
func requireSubcommand(c *cobra.Command) {
	for _, sub := range c.Commands() {
		requireSubcommand(sub)
	}
	if c.Runnable() || !c.HasSubCommands() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, set only for its own message
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
			}
			return fmt.Errorf("%s; run '%s --help' for its commands", msg, cmd.CommandPath())
		}
		if !cmd.HasParent() {
			if err := chdirSwallowedCommand(cmd); err != nil {
				return err
			}
		}
		return cmd.Help()
	}
}

// chdirSwallowedCommand catches `clusterctl -chdir validate`: the flag took
// the command's name as its folder and no command is left.
func chdirSwallowedCommand(root *cobra.Command) error {
	f := root.PersistentFlags().Lookup("chdir")
	if f == nil || !f.Changed {
		return nil
	}
	dir := f.Value.String()
	for _, sub := range root.Commands() {
		if sub.Name() == dir || sub.HasAlias(dir) {
			return fmt.Errorf("-chdir took %q as its folder and no command is left: -chdir needs a folder before the command, as in `clusterctl -chdir=DIR %s`", dir, dir)
		}
	}
	return nil
}

// normalizeArgs accepts Terraform's single-dash long flags (-chdir=DIR,
// -auto-approve) as well as the double-dash form by rewriting "-word" to
// "--word". Single-letter shorthands (-o FILE) and "--" are left alone, as is
// everything after a bare "--".
func normalizeArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && isLetter(a[1]) {
			name := a[1:]
			if eq := strings.IndexByte(name, '='); eq >= 0 {
				name = name[:eq]
			}
			if len(name) > 1 {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}

func isLetter(b byte) bool { return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') }

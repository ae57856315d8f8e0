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
	_ = g
	root.SetArgs(normalizeArgs(args))
	return root.ExecuteContext(ctx)
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

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/spf13/cobra"
)

func newSSHCmd(g *globals) *cobra.Command {
	var o specOptions
	var printOnly bool
	cmd := &cobra.Command{
		Use:   "ssh HOST [-- COMMAND...]",
		Short: "Open a shell on a host with the spec's SSH settings (OpenSSH)",
		Long: `ssh runs OpenSSH's ssh with what the spec says about HOST: address, port,
user, identity files, known_hosts file and host-key policy, and the bastion.
A command after "--" runs instead of a shell. --print shows the ssh command
line instead of running it.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadSpec(g, &o, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			h, ok := c.Host(args[0])
			if !ok {
				var names []string
				for _, h := range c.Hosts() {
					names = append(names, h.Name)
				}
				return fmt.Errorf("no host %q in the spec (hosts: %v)", args[0], names)
			}
			argv, err := sshArgs(h, args[1:])
			if err != nil {
				return err
			}
			if printOnly {
				fmt.Fprintln(cmd.OutOrStdout(), shellLine(argv))
				return nil
			}
			bin, err := exec.LookPath("ssh")
			if err != nil {
				return fmt.Errorf("OpenSSH's ssh is not installed: %w", err)
			}
			return syscall.Exec(bin, argv, os.Environ())
		},
	}
	addSpecFlags(cmd.Flags(), &o)
	cmd.Flags().BoolVar(&printOnly, "print", false, "print the ssh command line instead of running it")
	return cmd
}

// sshArgs is the OpenSSH command line for a host (argv[0] is "ssh").
func sshArgs(h spec.Host, command []string) ([]string, error) {
	s := h.SSH
	argv := []string{"ssh", "-p", strconv.Itoa(h.Port)}
	for _, id := range s.IdentityFiles {
		if !strings.Contains(id, "%") {
			// -i takes the path as is and warns when it is missing.
			if err := sshPathOK("identity file", id); err != nil {
				return nil, err
			}
			argv = append(argv, "-i", id)
			continue
		}
		// ssh expands %-tokens in an identity file after -i checked the
		// literal path, so a '%' needs the option form, escaped.
		v, err := sshOptionPath("identity file", id)
		if err != nil {
			return nil, err
		}
		argv = append(argv, "-o", "IdentityFile="+v)
	}
	if s.KnownHostsFile != "" {
		// UserKnownHostsFile is a list split at spaces: quoted.
		v, err := sshOptionPath("known_hosts file", s.KnownHostsFile)
		if err != nil {
			return nil, err
		}
		argv = append(argv, "-o", "UserKnownHostsFile="+v)
	}
	policy := "yes"
	if s.HostKeyPolicy == spec.HostKeyAcceptNew {
		policy = "accept-new"
	}
	argv = append(argv, "-o", "StrictHostKeyChecking="+policy)
	if !s.UseAgent {
		argv = append(argv, "-o", "IdentityAgent=none")
	}
	if s.ConnectTimeout > 0 {
		argv = append(argv, "-o", "ConnectTimeout="+strconv.Itoa(int(s.ConnectTimeout.Seconds())))
	}
	if b := s.Bastion; b.Address != "" {
		jump := b.Address
		if b.Port != 0 {
			jump = net.JoinHostPort(b.Address, strconv.Itoa(b.Port))
		}
		if b.User != "" {
			jump = b.User + "@" + jump
		}
		argv = append(argv, "-J", jump)
	}
	argv = append(argv, h.User+"@"+h.Address)
	if len(command) > 0 {
		argv = append(argv, "--")
		argv = append(argv, command...)
	}
	return argv, nil
}

// sshOptionPath writes a path as the value of an ssh -o option: a plain
// path as it is, any other in double quotes, which OpenSSH's option
// tokenizer takes as one word however many spaces it holds, and with '%'
// doubled, as ssh expands %-tokens in these paths (known_hosts files since
// OpenSSH 8.4).
func sshOptionPath(what, p string) (string, error) {
	if err := sshPathOK(what, p); err != nil {
		return "", err
	}
	plain := !strings.ContainsFunc(p, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,:@~=", r))
	})
	if plain {
		return p, nil
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", fmt.Errorf("the %s %q holds control characters, which ssh's option parser cannot take: use a path without them for `clusterctl ssh`", what, p)
	}
	if strings.ContainsAny(p, `"\`) {
		// Older OpenSSH has no escapes inside quotes, newer has: no
		// spelling works for both.
		return "", fmt.Errorf("the %s %q holds a double quote or a backslash, which ssh's option parser cannot take the same way in every OpenSSH version: use a path without them for `clusterctl ssh` (clusterctl itself reads it fine)", what, p)
	}
	return `"` + strings.ReplaceAll(p, "%", "%%") + `"`, nil
}

// sshPathOK refuses what ssh would expand in any path it takes.
func sshPathOK(what, p string) error {
	if strings.Contains(p, "${") {
		return fmt.Errorf("the %s %q holds \"${\", which ssh expands as an environment variable: use a path without it for `clusterctl ssh` (clusterctl itself reads it fine)", what, p)
	}
	return nil
}

// shellLine quotes argv for a POSIX shell.
func shellLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = provision.Quote(a)
	}
	return strings.Join(q, " ")
}

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
			argv := sshArgs(h, args[1:])
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
func sshArgs(h spec.Host, command []string) []string {
	s := h.SSH
	argv := []string{"ssh", "-p", strconv.Itoa(h.Port)}
	for _, id := range s.IdentityFiles {
		argv = append(argv, "-i", id)
	}
	if s.KnownHostsFile != "" {
		argv = append(argv, "-o", "UserKnownHostsFile="+s.KnownHostsFile)
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
	return argv
}

// shellLine quotes argv for a POSIX shell.
func shellLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = provision.Quote(a)
	}
	return strings.Join(q, " ")
}

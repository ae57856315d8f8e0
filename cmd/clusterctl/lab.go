package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/lab"
)

// newLabCmd is `clusterctl lab`: local hosts made of Linux namespaces with
// a real sshd each, for trying clusterctl and for its end-to-end tests.
func newLabCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Make local test hosts from network namespaces with OpenSSH (Linux, root)",
		Long: `lab makes hosts on this machine: a bridge, and per host a network namespace with its
own address, hostname, mounts (/etc/kubernetes, /var/lib/..., /run, /tmp, /root), cgroups
and an OpenSSH sshd. "lab up" writes DIR/lab.hcl (ssh and host blocks); add a cluster
block and run plan/apply with -chdir=DIR. "lab down" removes every trace.`,
		Args: cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "the lab `DIR`: lab.hcl, keys, known_hosts, lab.json, hosts/")
	needDir := func() error {
		if dir == "" {
			return errors.New("lab: --dir DIR is required")
		}
		return nil
	}
	cmd.AddCommand(
		newLabUpCmd(&dir, needDir),
		newLabDownCmd(&dir, needDir),
		newLabStatusCmd(&dir, needDir),
		newLabFaultCmd(&dir, needDir, "cut", "Take a host's network link down (packets dropped, connections stall)"),
		newLabFaultCmd(&dir, needDir, "heal", "Bring a cut host's network link back up"),
		newLabFaultCmd(&dir, needDir, "kill", "Kill every process of a host, as a power cut would"),
		newLabFaultCmd(&dir, needDir, "restart", "Boot a host again (kills it first if alive): files kept, /run fresh, sshd started"),
		newLabInitHostCmd(),
	)
	return cmd
}

// labSelf is the command that runs a lab host's init: this binary.
func labSelf() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("lab: find this executable: %w", err)
	}
	return []string{exe, "lab", "init-host"}, nil
}

func newLabUpCmd(dir *string, needDir func() error) *cobra.Command {
	var (
		cps, workers int
		subnet       string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Make the lab hosts and write DIR/lab.hcl",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDir(); err != nil {
				return err
			}
			p, err := labSubnet(subnet)
			if err != nil {
				return err
			}
			self, err := labSelf()
			if err != nil {
				return err
			}
			l, err := lab.Up(cmd.Context(), lab.Options{
				Dir: *dir, ControlPlanes: cps, Workers: workers, Subnet: p,
				Self: self, Progress: cmd.OutOrStdout(),
			})
			if err != nil {
				return err
			}
			kh, err := sshOptionPath("known_hosts file", l.KnownHostsPath())
			if err != nil {
				kh = l.KnownHostsPath()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\n%s\n", shellLine([]string{"ssh", "-i", l.ClientKeyPath(), "-o", "UserKnownHostsFile=" + kh, "root@" + l.Hosts()[0].Address}))
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cps, "control-planes", 1, "number of control-plane hosts (cp-1..N; roles control-plane, etcd)")
	f.IntVar(&workers, "workers", 2, "number of worker hosts (worker-1..M)")
	f.StringVar(&subnet, "subnet", lab.DefaultSubnet().String(), "IPv4 `CIDR` of the lab bridge: the workstation gets .1, hosts .11, .12, ...")
	return cmd
}

// labSubnet parses --subnet: an IPv4 network address with its prefix
// length. Host bits are refused rather than cleared, since the user may
// have meant another length as well as another address.
func labSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("lab: --subnet %q: %w; it must be an IPv4 network such as %s", s, err, lab.DefaultSubnet())
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("lab: --subnet %s: only IPv4 subnets are supported, such as %s", p, lab.DefaultSubnet())
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("lab: --subnet %s has host bits set: the network is %s; pass --subnet %s", p, m, m)
	}
	return p, nil
}

func newLabDownCmd(dir *string, needDir func() error) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove the lab: processes, namespaces, links, mounts, cgroups and its files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDir(); err != nil {
				return err
			}
			return lab.Down(cmd.Context(), *dir, cmd.OutOrStdout())
		},
	}
}

func newLabStatusCmd(dir *string, needDir func() error) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each lab host: address, roles, whether it runs, its link and its sshd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needDir(); err != nil {
				return err
			}
			l, err := lab.Open(*dir, nil)
			if err != nil {
				return err
			}
			st, err := l.Status(cmd.Context())
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "HOST\tADDRESS\tROLES\tHOST INIT\tLINK\tSSHD\n")
			for _, s := range st {
				roles := strings.Join(s.Roles, ",")
				if s.Bastion != "" {
					roles = "(behind " + s.Bastion + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Address, roles,
					word(s.Running, fmt.Sprintf("running (pid %d)", s.PID), "stopped"),
					word(s.LinkUp, "up", "cut"),
					word(s.SSHD, "up", "down"))
			}
			if ferr := tw.Flush(); ferr != nil {
				return ferr
			}
			return err
		},
	}
}

func word(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func newLabFaultCmd(dir *string, needDir func() error, name, short string) *cobra.Command {
	return &cobra.Command{
		Use:   name + " HOST",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := needDir(); err != nil {
				return err
			}
			var self []string
			if name == "restart" {
				var err error
				if self, err = labSelf(); err != nil {
					return err
				}
			}
			l, err := lab.Open(*dir, self)
			if err != nil {
				return err
			}
			ctx, host := cmd.Context(), args[0]
			switch name {
			case "cut":
				err = l.Cut(ctx, host)
			case "heal":
				err = l.Heal(ctx, host)
			case "kill":
				err = l.Kill(ctx, host)
			case "restart":
				err = l.Restart(ctx, host)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "lab %s: %s %s\n", l.ID(), name, host)
			return nil
		},
	}
}

// newLabInitHostCmd is the init (PID 1) of a lab host; `lab up` and `lab
// restart` start it inside the host's namespaces.
func newLabInitHostCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "init-host CONFIG",
		Short:  "Run as a lab host's init (started by lab up)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return lab.RunHostInit(args[0])
		},
	}
}

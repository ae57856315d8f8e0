package podnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// The keeper's own chains; each is jumped to from a built-in chain by one
// rule, and rewritten whole when its content differs.
const (
	ChainMasquerade = "CLUSTERCTL-POSTROUTING" // nat
	ChainForward    = "CLUSTERCTL-FORWARD"     // filter
)

// chain is one of the keeper's chains with the rules it must hold, in the
// form `iptables -S` prints them.
type chain struct {
	table, name string
	parent      string // built-in chain that jumps here
	insert      bool   // jump rule first in parent (else appended)
	comment     string
	rules       []string
}

// chains are the rules a node needs:
//   - masquerade what this node's pods send outside the pod network, and
//     nothing they send to other pods (multicast stays as it is);
//   - accept forwarding to and from pods even where the FORWARD policy is
//     DROP (a host with Docker, a hardened firewall).
func (c Config) chains() []chain {
	pod, all := c.PodCIDR.String(), c.ClusterCIDR.String()
	return []chain{
		{table: "nat", name: ChainMasquerade, parent: "POSTROUTING", comment: "clusterctl: masquerade pod traffic leaving the pod network", rules: []string{
			"-s " + pod + " -d " + all + " -j RETURN",
			"-s " + pod + " -d 224.0.0.0/4 -j RETURN",
			"-s " + pod + " -j MASQUERADE",
		}},
		{table: "filter", name: ChainForward, parent: "FORWARD", insert: true, comment: "clusterctl: forward pod traffic", rules: []string{
			"-s " + all + " -j ACCEPT",
			"-d " + all + " -j ACCEPT",
		}},
	}
}

// iptables runs the iptables tools. The same binaries kube-proxy uses
// (whatever `iptables` is on the host: nft or legacy backend).
type iptables struct{}

func (iptables) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// listed returns the rules of a chain as `iptables -S` prints them, without
// the -N line; ok is false when the chain does not exist. The whole table
// is listed: asking for a missing chain by name fails differently with the
// nft and legacy backends.
func (t iptables) listed(ctx context.Context, table, name string) (rules []string, ok bool, err error) {
	out, err := t.run(ctx, nil, "iptables", "-w", "5", "-t", table, "-S")
	if err != nil {
		return nil, false, err
	}
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "-N "+name {
			ok = true
		} else if r, found := strings.CutPrefix(l, "-A "+name+" "); found {
			rules = append(rules, r)
		}
	}
	return rules, ok, nil
}

func (ch chain) jumpArgs() []string {
	return []string{"-m", "comment", "--comment", ch.comment, "-j", ch.name}
}

func (t iptables) hasJump(ctx context.Context, ch chain) (bool, error) {
	_, err := t.run(ctx, nil, "iptables", append([]string{"-w", "5", "-t", ch.table, "-C", ch.parent}, ch.jumpArgs()...)...)
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false, nil // "Bad rule (does a matching rule exist in that chain?)"
	}
	return false, err
}

// sync makes one chain hold exactly its rules (rewritten atomically with
// iptables-restore when they differ) and makes sure its jump rule exists.
func (t iptables) sync(ctx context.Context, ch chain) ([]string, error) {
	var changed []string
	have, exists, err := t.listed(ctx, ch.table, ch.name)
	if err != nil {
		return nil, err
	}
	if !exists || !slices.Equal(have, ch.rules) {
		// In --noflush mode a declared chain is created or emptied, the rest
		// of the table is left alone: kube-proxy's chains stay untouched.
		var in bytes.Buffer
		fmt.Fprintf(&in, "*%s\n:%s - [0:0]\n", ch.table, ch.name)
		for _, r := range ch.rules {
			fmt.Fprintf(&in, "-A %s %s\n", ch.name, r)
		}
		in.WriteString("COMMIT\n")
		if _, err := t.run(ctx, in.Bytes(), "iptables-restore", "-w", "5", "--noflush"); err != nil {
			return nil, err
		}
		changed = append(changed, fmt.Sprintf("iptables %s chain %s written (%d rules)", ch.table, ch.name, len(ch.rules)))
	}
	ok, err := t.hasJump(ctx, ch)
	if err != nil {
		return changed, err
	}
	if !ok {
		op := "-A"
		if ch.insert {
			op = "-I"
		}
		if _, err := t.run(ctx, nil, "iptables", append([]string{"-w", "5", "-t", ch.table, op, ch.parent}, ch.jumpArgs()...)...); err != nil {
			return changed, err
		}
		changed = append(changed, fmt.Sprintf("iptables %s %s jumps to %s", ch.table, ch.parent, ch.name))
	}
	return changed, nil
}

// check lists what differs from the chain's wanted state.
func (t iptables) check(ctx context.Context, ch chain) ([]string, error) {
	have, exists, err := t.listed(ctx, ch.table, ch.name)
	if err != nil {
		return nil, err
	}
	var problems []string
	switch {
	case !exists:
		problems = append(problems, fmt.Sprintf("iptables %s chain %s is missing", ch.table, ch.name))
	case !slices.Equal(have, ch.rules):
		problems = append(problems, fmt.Sprintf("iptables %s chain %s holds %q, want %q", ch.table, ch.name, have, ch.rules))
	}
	ok, err := t.hasJump(ctx, ch)
	if err != nil {
		return problems, err
	}
	if !ok {
		problems = append(problems, fmt.Sprintf("iptables %s %s does not jump to %s", ch.table, ch.parent, ch.name))
	}
	return problems, nil
}

package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultSubnet returns the subnet `lab up` uses when none is given.
func DefaultSubnet() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, 0, 0}), 24)
}

// firstHostOffset is the offset of the first host address in the subnet:
// the bridge takes .1, hosts take .11, .12, ...
const firstHostOffset = 11

// plan of addresses for a lab: the bridge, the bridge hosts in order, and
// the hidden hosts (taken from the top of the subnet).
type addressPlan struct {
	bridge netip.Addr
	hosts  []netip.Addr
	hidden []netip.Addr
}

// planAddresses lays n bridge hosts and hidden hidden hosts out in subnet.
func planAddresses(subnet netip.Prefix, n, hidden int) (addressPlan, error) {
	if !subnet.Addr().Is4() {
		return addressPlan{}, fmt.Errorf("subnet %s: only IPv4 subnets are supported", subnet)
	}
	subnet = subnet.Masked()
	bits := 32 - subnet.Bits()
	size := uint64(1) << bits
	// Usable: network+1 .. broadcast-1.
	need := uint64(firstHostOffset + n + hidden + 1)
	if size < need {
		room := int64(size) - firstHostOffset - 1
		return addressPlan{}, fmt.Errorf("subnet %s has room for %d hosts (the bridge takes .1, hosts start at .%d); %d do not fit: use a larger --subnet", subnet, max(room, 0), firstHostOffset, n+hidden)
	}
	base := subnet.Addr().As4()
	at := func(off uint64) netip.Addr {
		v := uint64(base[0])<<24 | uint64(base[1])<<16 | uint64(base[2])<<8 | uint64(base[3])
		v += off
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	p := addressPlan{bridge: at(1)}
	for i := range n {
		p.hosts = append(p.hosts, at(uint64(firstHostOffset+i)))
	}
	for i := range hidden {
		p.hidden = append(p.hidden, at(size-2-uint64(i)))
	}
	return p, nil
}

// ErrSubnetInUse means another interface (another lab, a VPN, the uplink)
// has an address in the lab's subnet; another subnet helps.
var ErrSubnetInUse = errors.New("subnet in use")

// checkSubnetFree refuses a subnet that overlaps an address of any
// workstation interface but except.
func checkSubnetFree(subnet netip.Prefix, except string) error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, ifc := range ifs {
		if ifc.Name == except {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			p, err := netip.ParsePrefix(ipn.String())
			if err != nil {
				continue
			}
			if p.Overlaps(subnet) {
				return fmt.Errorf("%w: %s overlaps %s on %s (another lab?); pick another with --subnet", ErrSubnetInUse, subnet, p, ifc.Name)
			}
		}
	}
	return nil
}

// runIP runs `ip [-n netns] -batch -` with one command per line: one
// process for many changes keeps `lab up` fast.
func runIP(ctx context.Context, netns string, lines ...string) error {
	if len(lines) == 0 {
		return nil
	}
	args := []string{}
	if netns != "" {
		args = append(args, "-n", netns)
	}
	args = append(args, "-batch", "-")
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		where := ""
		if netns != "" {
			where = " in netns " + netns
		}
		return fmt.Errorf("ip%s: %w: %s", where, err, strings.TrimSpace(out.String()))
	}
	return nil
}

const netnsDir = "/run/netns"

// netnsExists reports whether `ip netns add name` has been done.
func netnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// netnsID returns the namespace identity ("net:[4026532...]") of a named
// netns, or "" if it does not exist.
func netnsID(name string) string {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(netnsDir, name), &st); err != nil {
		return ""
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

// linkExists reports whether a network interface exists on the workstation.
func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// liveLabIDs lists the ids of labs that have network namespaces on this
// machine.
func liveLabIDs() (map[string]bool, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, e := range ents {
		if id, ok := labIDOfNetns(e.Name()); ok {
			ids[id] = true
		}
	}
	return ids, nil
}

// linkUp reports whether a host's outer link end is administratively up
// (false after `lab cut`).
func linkUp(ctx context.Context, netns, link string) (bool, error) {
	args := []string{}
	if netns != "" {
		args = append(args, "-n", netns)
	}
	args = append(args, "-o", "link", "show", "dev", link)
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("ip link show %s: %w: %s", link, err, strings.TrimSpace(string(out)))
	}
	s := string(out)
	open, end := strings.IndexByte(s, '<'), strings.IndexByte(s, '>')
	if open < 0 || end < open {
		return false, fmt.Errorf("ip link show %s: unexpected output %q", link, s)
	}
	for _, f := range strings.Split(s[open+1:end], ",") {
		if f == "UP" {
			return true, nil
		}
	}
	return false, nil
}

// labIDOfNetns returns the lab id in a netns name "lab-<id>-<host>".
func labIDOfNetns(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "lab-")
	if !ok || len(rest) < 6 || rest[4] != '-' {
		return "", false
	}
	id := rest[:4]
	if !isLabID(id) {
		return "", false
	}
	return id, true
}

// isLabID reports whether s is four lower-case hex digits.
func isLabID(s string) bool {
	if len(s) != 4 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

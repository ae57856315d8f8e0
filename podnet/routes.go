package podnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol marks the routes the keeper owns (`ip route` shows "proto
// 204"), so it removes only its own stale routes and never one an
// administrator or another tool added. 204 is unused by the protocols that
// iproute2 names.
const RouteProtocol = 204

// ownRoutes lists the IPv4 routes in the main table that carry
// RouteProtocol.
func ownRoutes() ([]netlink.Route, error) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return rs, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, _ := netip.AddrFromSlice(n.IP)
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits)
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// routeMatches reports whether a kernel route sends want.Dst via want.Via.
func routeMatches(r netlink.Route, want Route) bool {
	return prefixOf(r.Dst) == want.Dst && addrOf(r.Gw) == want.Via
}

// syncRoutes makes the keeper's routes exactly want: missing or changed
// ones are replaced, stale ones (a node that left) deleted. It returns what
// it changed, for the log.
func syncRoutes(want []Route) ([]string, error) {
	have, err := ownRoutes()
	if err != nil {
		return nil, err
	}
	var changed []string
	var errs []error
	for _, w := range sortedRoutes(want) {
		ok := false
		for _, r := range have {
			if routeMatches(r, w) {
				ok = true
				break
			}
		}
		if ok {
			continue
		}
		// The kernel picks the interface that reaches Via; a Via that is
		// not on a directly connected network is refused (nodes must share
		// a link for this routing mode).
		r := &netlink.Route{Dst: ipNet(w.Dst), Gw: w.Via.AsSlice(), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
		if err := netlink.RouteReplace(r); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s (node %s): %w", w.Dst, w.Via, w.Node, err))
			continue
		}
		changed = append(changed, fmt.Sprintf("route %s via %s (node %s) set", w.Dst, w.Via, w.Node))
	}
	for _, r := range have {
		keep := false
		for _, w := range want {
			if routeMatches(r, w) {
				keep = true
				break
			}
		}
		if keep {
			continue
		}
		// A destination that moved to another node was replaced above; only
		// routes whose destination is no longer wanted at all remain.
		dst := prefixOf(r.Dst)
		wanted := false
		for _, w := range want {
			if w.Dst == dst {
				wanted = true
			}
		}
		if wanted {
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete stale route %s via %s: %w", dst, addrOf(r.Gw), err))
			continue
		}
		changed = append(changed, fmt.Sprintf("stale route %s via %s deleted", dst, addrOf(r.Gw)))
	}
	return changed, errors.Join(errs...)
}

// checkRoutes lists the wanted routes the kernel does not have.
func checkRoutes(want []Route) ([]string, error) {
	have, err := ownRoutes()
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, w := range sortedRoutes(want) {
		found := false
		for _, r := range have {
			if routeMatches(r, w) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, fmt.Sprintf("route to %s (pods of %s) via %s is missing", w.Dst, w.Node, w.Via))
		}
	}
	return missing, nil
}

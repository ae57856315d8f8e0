// Package podnet keeps a node's pod network in place: the CNI network list
// and plugin links that containerd reads, a route to every other node's pod
// CIDR through that node's address (pods reach each other without NAT), the
// masquerade rule for traffic that leaves the pod network, and the sysctls
// this needs. A Keeper runs on every node under the agent (`clusterctl agent
// cni`); it repairs what goes missing (a reboot, a hand-deleted route, a
// flushed table) and serves a health endpoint that checks the live state.
package podnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// Config is the keeper's network.json, rendered by clusterctl for one node.
type Config struct {
	Node        string       `json:"node"`
	PodCIDR     netip.Prefix `json:"pod_cidr"`     // this node's pods
	ClusterCIDR netip.Prefix `json:"cluster_cidr"` // every pod of the cluster
	Routes      []Route      `json:"routes"`       // to the other nodes' pod CIDRs
	// ConfList names the CNI network list file, next to network.json.
	ConfList string `json:"conflist"`
	ConfDir  string `json:"conf_dir"`  // where containerd reads it (/etc/cni/net.d)
	ConfName string `json:"conf_name"` // file name there
	// PluginDir holds the bundled plugin binaries (versioned); BinDir is
	// the stable folder containerd searches, with a link per plugin.
	PluginDir     string   `json:"plugin_dir"`
	BinDir        string   `json:"bin_dir"`
	Plugins       []string `json:"plugins"`
	HealthAddress string   `json:"health_address"` // host:port of GET /healthz
}

// Route sends one other node's pod CIDR to that node.
type Route struct {
	Node string       `json:"node"`
	Dst  netip.Prefix `json:"dst"`
	Via  netip.Addr   `json:"via"`
}

// Validate checks the config on its own.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Node == "" {
		bad("node is empty")
	}
	if !c.ClusterCIDR.IsValid() || !c.ClusterCIDR.Addr().Is4() {
		bad("cluster_cidr %s: want an IPv4 prefix", c.ClusterCIDR)
	}
	if !c.PodCIDR.IsValid() || !c.PodCIDR.Addr().Is4() || c.PodCIDR.Bits() < c.ClusterCIDR.Bits() || !c.ClusterCIDR.Contains(c.PodCIDR.Addr()) {
		bad("pod_cidr %s: want an IPv4 prefix inside cluster_cidr %s", c.PodCIDR, c.ClusterCIDR)
	}
	seen := map[netip.Prefix]string{c.PodCIDR: c.Node}
	for _, r := range c.Routes {
		if !r.Dst.IsValid() || !r.Via.IsValid() || !r.Via.Is4() {
			bad("route for %s: want dst and an IPv4 via", r.Node)
			continue
		}
		if !c.ClusterCIDR.Contains(r.Dst.Addr()) {
			bad("route for %s: %s is not inside cluster_cidr %s", r.Node, r.Dst, c.ClusterCIDR)
		}
		if other, dup := seen[r.Dst]; dup {
			bad("route for %s: %s is also the pod CIDR of %s", r.Node, r.Dst, other)
		}
		seen[r.Dst] = r.Node
	}
	for name, p := range map[string]string{"conf_dir": c.ConfDir, "plugin_dir": c.PluginDir, "bin_dir": c.BinDir} {
		if !filepath.IsAbs(p) {
			bad("%s %q: want an absolute path", name, p)
		}
	}
	if c.ConfList == "" || c.ConfName == "" || filepath.Base(c.ConfName) != c.ConfName {
		bad("conflist and conf_name must name files")
	}
	if len(c.Plugins) == 0 {
		bad("plugins is empty")
	}
	if c.HealthAddress == "" {
		bad("health_address is empty")
	}
	return errors.Join(errs...)
}

// Marshal renders network.json.
func (c Config) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Load reads network.json and the network list it names. Unknown fields
// are errors: a typo must not be ignored.
func Load(path string) (Config, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, nil, err
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	list, err := os.ReadFile(filepath.Join(filepath.Dir(path), c.ConfList))
	if err != nil {
		return Config{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, list, nil
}

// sortedRoutes returns the routes ordered by destination, for stable logs.
func sortedRoutes(rs []Route) []Route {
	out := slices.Clone(rs)
	slices.SortFunc(out, func(a, b Route) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	return out
}

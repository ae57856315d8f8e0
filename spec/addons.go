package spec

import (
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/clusterctl/clusterctl/bundle"
)

// Addon is a cluster add-on: objects clusterctl applies through the API
// once the control plane and the nodes are up (`addon "NAME" { ... }`).
// Every add-on is on unless its block says enabled = false.
type Addon struct {
	Name       string
	Enabled    bool
	Version    string // default: the version the release pins
	VersionSet bool
	Replicas   int
	// Forward (coredns) are the resolvers names outside the cluster go
	// to: addresses ("10.0.0.2", "10.0.0.2:5353") or the path of a
	// resolv.conf on the node. Empty: cluster names only.
	Forward   []string
	DeclRange hcl.Range
}

// DefaultForward is where CoreDNS sends names outside the cluster unless the
// spec says otherwise: the resolvers of the node it runs on.
const DefaultForward = "/etc/resolv.conf"

// Addons returns every add-on clusterctl knows, with its effective settings.
func (c *Cluster) Addons() []Addon {
	out := slices.Clone(c.addons)
	for i := range out {
		out[i].Forward = slices.Clone(out[i].Forward)
	}
	return out
}

// Addon returns the named add-on's settings.
func (c *Cluster) Addon(name string) (Addon, bool) {
	for _, a := range c.Addons() {
		if a.Name == name {
			return a, true
		}
	}
	return Addon{}, false
}

func addonSchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "enabled"},
		{Name: "version"},
		{Name: "replicas"},
		{Name: "forward"},
	}}
}

// addons decodes the addon blocks over the defaults.
func (b *builder) addons(c *Cluster, blocks hcl.Blocks) {
	known := bundle.Addons()
	seen := map[string]hcl.Range{}
	for _, name := range known {
		// CoreDNS keeps a replica through the loss of a node; one
		// metrics-server is upstream's default.
		a := Addon{Name: name, Enabled: true, Replicas: 1}
		if name == bundle.CoreDNS {
			a.Replicas, a.Forward = 2, []string{DefaultForward}
		}
		a.Version, _ = c.release.Version(name)
		c.addons = append(c.addons, a)
	}
	for _, blk := range blocks {
		name := blk.Labels[0]
		i := slices.Index(known, name)
		if i < 0 {
			b.errorf(blk.LabelRanges[0].Ptr(), "Unknown add-on", "There is no add-on %q; the add-ons are %s.%s", name, quoteList(known), suggest(name, known))
			continue
		}
		if prev, ok := seen[name]; ok {
			b.errorf(blk.DefRange.Ptr(), "Duplicate add-on block", "Add-on %q was already configured at %s. Each add-on has at most one block across all files.", name, at(prev))
			continue
		}
		seen[name] = blk.DefRange
		content, diags := blk.Body.Content(addonSchema())
		b.diags = append(b.diags, diags...)
		attrs := content.Attributes
		a := &c.addons[i]
		a.DeclRange = blk.DefRange
		if e := b.boolean(attrs, "enabled"); e.set {
			a.Enabled = e.v
		}
		if n := b.integer(attrs, "replicas", 1, 100); n.set {
			a.Replicas = n.v
		}
		if v := b.str(attrs, "version"); v.set {
			want := strings.TrimPrefix(v.v, "v")
			if avail := bundleVersions(name); !slices.Contains(avail, want) {
				b.valueErr(v.field, "Version not in the bundle", "%s %s is not one clusterctl ships; available: %s.", name, v.show(v.v), strings.Join(avail, ", "))
			} else {
				a.Version, a.VersionSet = want, true
			}
		}
		if f := b.list(attrs, "forward"); f.set && name != bundle.CoreDNS {
			b.valueErr(f.field, "Not a setting of "+name, "forward is a setting of the coredns add-on only.")
		} else if f.set {
			a.Forward = nil
			for _, s := range f.v {
				if !validForward(s) {
					b.valueErr(f.field, "Invalid resolver", "forward entry %q is neither an IP address (with an optional :port) nor the absolute path of a resolv.conf on the nodes.", s)
					continue
				}
				a.Forward = append(a.Forward, s)
			}
		}
	}
}

func validForward(s string) bool {
	if path.IsAbs(s) && path.Clean(s) == s {
		return true
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParseAddrPort(s)
	return err == nil
}

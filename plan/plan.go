package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// FormatVersion is the version of the JSON plan format.
const FormatVersion = "2"

// Object is one thing clusterctl manages, as desired (from the spec) or as
// observed (on the hosts). Components on hosts have Kind "component";
// cluster-wide objects such as certificates have an empty Host.
type Object struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Host    string `json:"host,omitempty"`
	Version string `json:"version,omitempty"`
	// Attrs are compared one by one; their order is kept for display.
	Attrs []Attr `json:"attrs,omitempty"`
	// Partial (observed objects only) means Attrs cover only part of what
	// the desired object carries: an attribute the desired object has and
	// this one lacks is unknown, not absent, and is not compared. A host
	// recorded by an older clusterctl has no file attributes (FileAttr);
	// its plan must not show every field of every file as new.
	Partial bool `json:"partial,omitempty"`
	// Drift lists what was found changed by hand on the host (observed
	// objects only), such as a config file whose hash no longer matches.
	Drift []string `json:"drift,omitempty"`
}

// Attr is one attribute of an object.
type Attr struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Sensitive bool   `json:"sensitive,omitempty"`
}

// FileAttr splits the name of a file attribute, "<file>:<field path>" or
// "<file>:sha256", into the file and the rest. Other attributes (flags
// start with "-", config_hash) have no colon.
func FileAttr(name string) (file, field string, ok bool) {
	if strings.HasPrefix(name, "-") {
		return "", "", false
	}
	return strings.Cut(name, ":")
}

// Address names an object the way plans and journals do:
// component.etcd["cp-1"], cert.apiserver.
func (o Object) Address() string { return Address(o.Kind, o.Name, o.Host) }

// Address builds an object address.
func Address(kind, name, host string) string {
	if host == "" {
		return kind + "." + name
	}
	return fmt.Sprintf("%s.%s[%q]", kind, name, host)
}

func (o Object) attr(name string) (Attr, bool) {
	for _, a := range o.Attrs {
		if a.Name == name {
			return a, true
		}
	}
	return Attr{}, false
}

// Change is what the plan does to one object.
type Change struct {
	Address string `json:"address"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Host    string `json:"host,omitempty"`
	Action  Action `json:"action"`
	// Reason explains the action for people; nothing acts on it.
	Reason string       `json:"reason,omitempty"`
	Before string       `json:"version_before,omitempty"`
	After  string       `json:"version_after,omitempty"`
	Attrs  []AttrChange `json:"attrs,omitempty"`
}

// AttrChange is the before and after of one attribute. Sensitive values are
// never stored in a plan: they read "(sensitive)".
type AttrChange struct {
	Name      string `json:"name"`
	Action    Action `json:"action"`
	Before    string `json:"before,omitempty"`
	After     string `json:"after,omitempty"`
	Sensitive bool   `json:"sensitive,omitempty"`
}

const sensitiveText = "(sensitive)"

// Plan is the whole plan: changes, the order they run in, and what it was
// made from. Human output is rendered from this model.
type Plan struct {
	FormatVersion string      `json:"format_version"`
	Mode          Mode        `json:"mode"`
	Cluster       string      `json:"cluster"`
	CreatedAt     time.Time   `json:"created_at"`
	Fingerprint   Fingerprint `json:"fingerprint"`
	Changes       []Change    `json:"changes"`
	Steps         []Step      `json:"steps"`
	Warnings      []string    `json:"warnings,omitempty"`
	// KeepData (destroy) keeps etcd's data, containerd's images, the etcd
	// snapshots and the local PKI.
	KeepData bool `json:"keep_data,omitempty"`
}

// HasChanges reports whether applying the plan would do anything.
func (p *Plan) HasChanges() bool {
	for _, c := range p.Changes {
		if c.Action != NoOp {
			return true
		}
	}
	return false
}

// Counts returns how many changes each action has.
func (p *Plan) Counts() map[Action]int {
	n := map[Action]int{}
	for _, c := range p.Changes {
		if c.Action != NoOp {
			n[c.Action]++
		}
	}
	return n
}

// Change returns the change at an address.
func (p *Plan) Change(address string) (Change, bool) {
	for _, c := range p.Changes {
		if c.Address == address {
			return c, true
		}
	}
	return Change{}, false
}

// Diff compares desired and observed objects and returns one change per
// object that differs, sorted by address. Objects equal on both sides give
// no change.
func Diff(desired, observed []Object) []Change {
	obs := map[string]Object{}
	for _, o := range observed {
		obs[o.Address()] = o
	}
	var out []Change
	seen := map[string]bool{}
	for _, d := range desired {
		addr := d.Address()
		seen[addr] = true
		o, ok := obs[addr]
		if !ok {
			out = append(out, created(d))
			continue
		}
		if c, changed := compare(d, o); changed {
			out = append(out, c)
		}
	}
	for _, o := range observed {
		if !seen[o.Address()] {
			out = append(out, deleted(o))
		}
	}
	slices.SortStableFunc(out, func(a, b Change) int { return cmp.Compare(a.Address, b.Address) })
	return out
}

func base(o Object, a Action) Change {
	return Change{Address: o.Address(), Kind: o.Kind, Name: o.Name, Host: o.Host, Action: a}
}

func created(d Object) Change {
	c := base(d, Create)
	c.After = d.Version
	if d.Version != "" {
		c.Attrs = append(c.Attrs, AttrChange{Name: "version", Action: Create, After: d.Version})
	}
	for _, a := range d.Attrs {
		c.Attrs = append(c.Attrs, attrChange(a.Name, Create, "", a.Value, a.Sensitive))
	}
	return c
}

func deleted(o Object) Change {
	c := base(o, Delete)
	c.Before = o.Version
	c.Reason = "no longer in the spec"
	if o.Version != "" {
		c.Attrs = append(c.Attrs, AttrChange{Name: "version", Action: Delete, Before: o.Version})
	}
	for _, a := range o.Attrs {
		c.Attrs = append(c.Attrs, attrChange(a.Name, Delete, a.Value, "", a.Sensitive))
	}
	return c
}

func compare(d, o Object) (Change, bool) {
	c := base(d, NoOp)
	c.Before, c.After = o.Version, d.Version
	var reasons []string
	if d.Version != o.Version {
		c.Action = Upgrade
		c.Attrs = append(c.Attrs, AttrChange{Name: "version", Action: Update, Before: o.Version, After: d.Version})
		reasons = append(reasons, fmt.Sprintf("version %s → %s", orNone(o.Version), d.Version))
	}
	var changedAttrs []string
	for _, da := range d.Attrs {
		oa, ok := o.attr(da.Name)
		switch {
		case !ok && o.Partial:
			// Unknown on the host: config_hash still shows a change.
		case !ok:
			c.Attrs = append(c.Attrs, attrChange(da.Name, Create, "", da.Value, da.Sensitive))
			changedAttrs = append(changedAttrs, da.Name)
		case oa.Value != da.Value:
			c.Attrs = append(c.Attrs, attrChange(da.Name, Update, oa.Value, da.Value, da.Sensitive || oa.Sensitive))
			changedAttrs = append(changedAttrs, da.Name)
		}
	}
	for _, oa := range o.Attrs {
		if _, ok := d.attr(oa.Name); !ok {
			c.Attrs = append(c.Attrs, attrChange(oa.Name, Delete, oa.Value, "", oa.Sensitive))
			changedAttrs = append(changedAttrs, oa.Name)
		}
	}
	if len(changedAttrs) > 0 {
		if c.Action == NoOp {
			c.Action = Update
		}
		reasons = append(reasons, strings.Join(reasonNames(changedAttrs), ", ")+" changed")
	}
	if len(o.Drift) > 0 {
		if c.Action == NoOp {
			c.Action = Update
		}
		reasons = append(reasons, "changed on the host: "+strings.Join(o.Drift, ", "))
	}
	c.Reason = strings.Join(reasons, "; ")
	return c, c.Action != NoOp
}

// reasonNames names changed attributes for a reason: a file once for all
// its changed fields, which the attributes list one by one.
func reasonNames(names []string) []string {
	var out []string
	for _, n := range names {
		if file, _, ok := FileAttr(n); ok {
			n = file
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func attrChange(name string, a Action, before, after string, sensitive bool) AttrChange {
	if sensitive {
		if before != "" {
			before = sensitiveText
		}
		if after != "" {
			after = sensitiveText
		}
	}
	return AttrChange{Name: name, Action: a, Before: before, After: after, Sensitive: sensitive}
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

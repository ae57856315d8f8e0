package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes the plan's machine-readable form.
func WriteJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// ReadJSON reads a plan written by WriteJSON.
func ReadJSON(r io.Reader) (*Plan, error) {
	var p Plan
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if p.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("read plan: format version %q is not supported (want %q)", p.FormatVersion, FormatVersion)
	}
	return &p, nil
}

// TextOptions control the human rendering.
type TextOptions struct {
	Color bool // ANSI colours, for terminals
}

// WriteText renders the plan for people, Terraform-style, from the same
// model WriteJSON writes. The mode picks the words; the layout is one.
func WriteText(w io.Writer, p *Plan, opt TextOptions) error {
	r := renderer{w: w, color: opt.Color, mode: p.Mode}
	for _, warn := range p.Warnings {
		r.printf("%s %s\n\n", r.paint("Warning:", yellow), warn)
	}
	if !p.HasChanges() {
		switch p.Mode {
		case ModeDestroy:
			r.printf("No clusterctl components or files on the %d hosts of the spec: nothing to destroy.\n", len(p.Fingerprint.Hosts))
		default:
			r.printf("%s Cluster %q matches the spec.\n", r.paint("No changes.", green+bold), p.Cluster)
		}
		return r.err
	}
	switch p.Mode {
	case ModeDestroy:
		r.printf("clusterctl will destroy everything it installed on these hosts (symbols: %s destroy):\n\n", r.sym(Delete))
	case ModeRollback:
		r.printf("clusterctl will roll back these components to the generation they ran before (nothing is uploaded):\n\n")
	default:
		r.printf("clusterctl will perform the following actions (%s: %s create, %s upgrade, %s update in place, %s delete):\n\n",
			"symbols", r.sym(Create), r.sym(Upgrade), r.sym(Update), r.sym(Delete))
	}
	var certs []Change
	for _, c := range p.Changes {
		switch {
		case c.Action == NoOp:
		case c.Kind == "cert":
			certs = append(certs, c)
		default:
			r.change(c)
		}
	}
	if len(certs) > 0 {
		r.certs(certs)
	}
	if len(p.Steps) > 0 {
		r.printf("%s order:\n", p.Mode.title())
		for i, s := range p.Steps {
			r.printf("  %2d. %s %s on %s", i+1, r.sym(s.Action), s.Component, strings.Join(s.Hosts, ", "))
			if len(s.DependsOn) > 0 {
				r.printf("  (after %s)", strings.Join(s.DependsOn, ", "))
			}
			r.printf("\n")
		}
		r.printf("\n")
	}
	if p.Mode == ModeDestroy || p.Mode == ModeRollback {
		r.summary(p)
		return r.err
	}
	n := p.Counts()
	r.printf("%s %d to create, %d to upgrade, %d to update, %d to delete.\n",
		r.paint("Plan:", bold), n[Create], n[Upgrade], n[Update], n[Delete])
	return r.err
}

// summary ends a destroy or rollback plan: what is kept, and how many
// components on how many hosts.
func (r *renderer) summary(p *Plan) {
	hosts := map[string]bool{}
	n := 0
	var kept []string
	for _, c := range p.Changes {
		if c.Kind != "component" || c.Action == NoOp {
			continue
		}
		n++
		hosts[c.Host] = true
		for _, a := range c.Attrs {
			if a.Name == AttrKept && a.Before != "" {
				for _, k := range strings.Split(a.Before, ", ") {
					kept = append(kept, k+" on "+c.Host)
				}
			}
		}
	}
	if p.KeepData {
		kept = append(kept, "the etcd snapshots on the hosts", "the local PKI")
		r.printf("Kept (-keep-data): %s.\n\n", strings.Join(kept, "; "))
	}
	word, unit := "Destroy", "hosts"
	if p.Mode == ModeRollback {
		word = "Rollback"
	}
	if len(hosts) == 1 {
		unit = "host"
	}
	r.printf("%s %d components on %d %s.\n", r.paint(word+":", bold), n, len(hosts), unit)
}

// AttrKept is the attribute of a destroyed agent that lists the data
// folders -keep-data keeps on its host.
const AttrKept = "kept"

type renderer struct {
	w     io.Writer
	color bool
	mode  Mode
	err   error
}

const (
	reset  = "\x1b[0m"
	bold   = "\x1b[1m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	red    = "\x1b[31m"
	cyan   = "\x1b[36m"
)

func (r *renderer) printf(format string, args ...any) {
	if r.err != nil {
		return
	}
	_, r.err = fmt.Fprintf(r.w, format, args...)
}

func (r *renderer) paint(s, code string) string {
	if !r.color {
		return s
	}
	return code + s + reset
}

func (r *renderer) sym(a Action) string {
	switch a {
	case Create:
		return r.paint(a.Symbol(), green)
	case Delete:
		return r.paint(a.Symbol(), red)
	case Upgrade:
		return r.paint(a.Symbol(), cyan)
	}
	return r.paint(a.Symbol(), yellow)
}

func (r *renderer) change(c Change) {
	verb := c.Action.verb()
	switch {
	case r.mode == ModeDestroy:
		verb = "destroyed"
	case r.mode == ModeRollback:
		verb = "rolled back"
	}
	r.printf("  %s %s will be %s", r.paint("#", bold), r.paint(c.Address, bold), verb)
	if c.Reason != "" {
		r.printf(" (%s)", c.Reason)
	}
	r.printf("\n")
	where := ""
	if c.Host != "" {
		where = fmt.Sprintf(" on %q", c.Host)
	}
	r.printf("  %s %s %q%s {\n", r.sym(c.Action), c.Kind, c.Name, where)
	lines := attrLines(c)
	width := 0
	for _, l := range lines {
		width = max(width, len(l.name))
	}
	for _, l := range lines {
		switch l.action {
		case Create:
			r.printf("      %s %-*s = %s\n", r.sym(Create), width, l.name, l.after)
		case Delete:
			r.printf("      %s %-*s = %s\n", r.sym(Delete), width, l.name, l.before)
		default:
			r.printf("      %s %-*s = %s -> %s\n", r.sym(Update), width, l.name, l.before, l.after)
		}
	}
	r.printf("    }\n\n")
}

type attrLine struct {
	name          string
	action        Action
	before, after string
}

// attrLines is what the text shows of a change's attributes. An update
// lists each changed attribute, file fields included: that is the point of
// the plan. A create or delete of a whole component would list every field
// of every file it has, hundreds of lines saying only "all of it", so
// there a structured file is one line with its count of fields
// ("kubelet-config.yaml = (34 fields)", as Terraform folds a nested block
// it does not need to show) and the flags, version and digests stay one
// line each. The JSON plan always has every attribute.
func attrLines(c Change) []attrLine {
	var out []attrLine
	fold := c.Action == Create || c.Action == Delete
	for i := 0; i < len(c.Attrs); i++ {
		a := c.Attrs[i]
		if file, _, ok := FileAttr(a.Name); ok && fold && a.Action == c.Action {
			n := 1
			for n < len(c.Attrs)-i {
				f, _, ok := FileAttr(c.Attrs[i+n].Name)
				if !ok || f != file || c.Attrs[i+n].Action != a.Action {
					break
				}
				n++
			}
			if n > 1 {
				v := fmt.Sprintf("(%d fields)", n)
				out = append(out, attrLine{name: file, action: a.Action, before: v, after: v})
				i += n - 1
				continue
			}
		}
		out = append(out, attrLine{name: a.Name, action: a.Action, before: quote(a.Before), after: quote(a.After)})
	}
	return out
}

func quote(v string) string {
	if v == sensitiveText {
		return v
	}
	return fmt.Sprintf("%q", v)
}

// certs lists certificate changes one per line: there are many, and what
// matters is which, why, and until when.
func (r *renderer) certs(cs []Change) {
	r.printf("  %s certificates in the local PKI (written to the hosts with the components that use them):\n", r.paint("#", bold))
	width := 0
	for _, c := range cs {
		width = max(width, len(c.Name))
	}
	for _, c := range cs {
		pad := strings.Repeat(" ", max(0, 3-len(c.Action.Symbol()))) // the symbol may carry colour codes
		r.printf("  %s%s %-*s", pad, r.sym(c.Action), width, c.Name)
		for _, a := range c.Attrs {
			if a.Name == "not_after" {
				r.printf("  valid until %s", a.After)
			}
		}
		if c.Reason != "" {
			r.printf("  (%s)", c.Reason)
		}
		r.printf("\n")
	}
	r.printf("\n")
}

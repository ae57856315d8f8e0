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
// model WriteJSON writes.
func WriteText(w io.Writer, p *Plan, opt TextOptions) error {
	r := renderer{w: w, color: opt.Color}
	for _, warn := range p.Warnings {
		r.printf("%s %s\n\n", r.paint("Warning:", yellow), warn)
	}
	if !p.HasChanges() {
		r.printf("%s Cluster %q matches the spec.\n", r.paint("No changes.", green+bold), p.Cluster)
		return r.err
	}
	r.printf("clusterctl will perform the following actions (%s: %s create, %s upgrade, %s update in place, %s replace, %s delete):\n\n",
		"symbols", r.sym(Create), r.sym(Upgrade), r.sym(Update), r.sym(Replace), r.sym(Delete))
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
		r.printf("Rollout order:\n")
		for i, s := range p.Steps {
			r.printf("  %2d. %s %s on %s", i+1, r.sym(s.Action), s.Component, strings.Join(s.Hosts, ", "))
			if len(s.DependsOn) > 0 {
				r.printf("  (after %s)", strings.Join(s.DependsOn, ", "))
			}
			r.printf("\n")
		}
		r.printf("\n")
	}
	n := p.Counts()
	r.printf("%s %d to create, %d to upgrade, %d to update, %d to replace, %d to delete.\n",
		r.paint("Plan:", bold), n[Create], n[Upgrade], n[Update], n[Replace], n[Delete])
	return r.err
}

type renderer struct {
	w     io.Writer
	color bool
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
	case Replace:
		return r.paint(a.Symbol(), red+bold)
	case Upgrade:
		return r.paint(a.Symbol(), cyan)
	}
	return r.paint(a.Symbol(), yellow)
}

func (r *renderer) change(c Change) {
	r.printf("  %s %s will be %s", r.paint("#", bold), r.paint(c.Address, bold), c.Action.verb())
	if c.Reason != "" {
		r.printf(" (%s)", c.Reason)
	}
	r.printf("\n")
	where := ""
	if c.Host != "" {
		where = fmt.Sprintf(" on %q", c.Host)
	}
	r.printf("  %s %s %q%s {\n", r.sym(c.Action), c.Kind, c.Name, where)
	width := 0
	for _, a := range c.Attrs {
		width = max(width, len(a.Name))
	}
	for _, a := range c.Attrs {
		switch a.Action {
		case Create:
			r.printf("      %s %-*s = %s\n", r.sym(Create), width, a.Name, quote(a.After))
		case Delete:
			r.printf("      %s %-*s = %s\n", r.sym(Delete), width, a.Name, quote(a.Before))
		default:
			r.printf("      %s %-*s = %s -> %s\n", r.sym(Update), width, a.Name, quote(a.Before), quote(a.After))
		}
	}
	r.printf("    }\n\n")
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

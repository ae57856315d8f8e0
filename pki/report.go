package pki

import (
	"fmt"
	"strings"
	"time"
)

// Action is what Ensure does (or Check would do) with one entry.
type Action string

const (
	ActionKeep    Action = "keep"    // valid, matches the table, not expiring soon
	ActionCreate  Action = "create"  // nothing there yet
	ActionRenew   Action = "renew"   // same identity, new validity (a new key for leaves, the same key for CAs)
	ActionReissue Action = "reissue" // no longer matches the table or is unusable
)

// Result is the outcome for one entry. It never holds key material.
type Result struct {
	ID     string
	Kind   Kind
	Action Action
	// Reason explains Action: "SANs changed: +10.0.0.5", "expires in 12
	// days", "apiserver.crt: no PEM data". Empty for keep.
	Reason string
	// Warning is set when the change reaches beyond this entry: a CA or
	// the service-account key replaced by a new key.
	Warning string
	// NotAfter is the certificate's expiry after the run (zero for key
	// pairs).
	NotAfter time.Time
}

// Report lists one Result per table entry, in table order.
type Report struct {
	Now     time.Time
	Results []Result
}

// Changed reports whether any entry is not kept.
func (r Report) Changed() bool { return len(r.Changes()) > 0 }

// Changes returns the results that are not keep.
func (r Report) Changes() []Result {
	var out []Result
	for _, x := range r.Results {
		if x.Action != ActionKeep {
			out = append(out, x)
		}
	}
	return out
}

// Warnings returns every result's warning, in table order.
func (r Report) Warnings() []string {
	var out []string
	for _, x := range r.Results {
		if x.Warning != "" {
			out = append(out, x.Warning)
		}
	}
	return out
}

// Result returns the result for one entry ID.
func (r Report) Result(id string) (Result, bool) {
	for _, x := range r.Results {
		if x.ID == id {
			return x, true
		}
	}
	return Result{}, false
}

// String renders one line per entry with its expiry, then the warnings.
func (r Report) String() string {
	var b strings.Builder
	w := 0
	for _, x := range r.Results {
		w = max(w, len(x.ID))
	}
	for _, x := range r.Results {
		exp := "no expiry"
		if !x.NotAfter.IsZero() {
			exp = "expires " + x.NotAfter.UTC().Format(time.DateOnly) + " (" + within(x.NotAfter.Sub(r.Now)) + ")"
		}
		fmt.Fprintf(&b, "%-7s  %-*s  %s", x.Action, w, x.ID, exp)
		if x.Reason != "" {
			fmt.Fprintf(&b, ": %s", x.Reason)
		}
		b.WriteByte('\n')
	}
	for _, warn := range r.Warnings() {
		fmt.Fprintf(&b, "WARNING: %s\n", warn)
	}
	return b.String()
}

// within renders a remaining duration: "in 364 days", "in 5 hours",
// "3 days ago".
func within(d time.Duration) string {
	ago := d < 0
	if ago {
		d = -d
	}
	var s string
	switch days := int(d / (24 * time.Hour)); {
	case days >= 2:
		s = fmt.Sprintf("%d days", days)
	case d >= time.Hour:
		s = fmt.Sprintf("%d hours", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
	if ago {
		return s + " ago"
	}
	return "in " + s
}

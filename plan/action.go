// Package plan holds the model of a plan: what clusterctl would change, in
// which order, and why. It is pure: computing desired and observed state is
// other packages' work; this one diffs them, orders the work into a step
// graph, and renders the result as JSON and as human text derived from the
// same model.
package plan

import (
	"encoding/json"
	"fmt"
)

// Action is what a change does. The action drives behaviour; a change's
// Reason only explains it.
type Action int

// Actions, in the order the summary line lists them.
const (
	NoOp    Action = iota
	Create         // +
	Upgrade        // ^ new version
	Update         // ~ same version, new config or args
	Delete         // -
)

// Symbol is the mark shown in front of a change.
func (a Action) Symbol() string {
	switch a {
	case Create:
		return "+"
	case Upgrade:
		return "^"
	case Update:
		return "~"
	case Delete:
		return "-"
	}
	return " "
}

// String is the action's name as used in JSON and messages.
func (a Action) String() string {
	switch a {
	case NoOp:
		return "no-op"
	case Create:
		return "create"
	case Upgrade:
		return "upgrade"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// verb is the past participle used in "will be ...".
func (a Action) verb() string {
	switch a {
	case Create:
		return "created"
	case Upgrade:
		return "upgraded"
	case Update:
		return "updated in place"
	case Delete:
		return "deleted"
	}
	return "left alone"
}

// MarshalJSON writes the action's name.
func (a Action) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

// UnmarshalJSON reads an action's name.
func (a *Action) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for c := NoOp; c <= Delete; c++ {
		if c.String() == s {
			*a = c
			return nil
		}
	}
	return fmt.Errorf("unknown plan action %q", s)
}

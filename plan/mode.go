package plan

import (
	"encoding/json"
	"fmt"
)

// Mode is what a plan is for. One planner makes every mode and one
// executor carries them out; the mode says how changes are computed and
// what a change means when it runs.
type Mode string

// Plan modes.
const (
	// ModeApply makes the hosts match the spec.
	ModeApply Mode = "apply"
	// ModeDestroy removes everything clusterctl put on the spec's hosts:
	// every change is a delete, ordered as the rollout reversed.
	ModeDestroy Mode = "destroy"
	// ModeRollback puts chosen components back on the generation they ran
	// before; its steps go in the reverse of the upgrade order.
	ModeRollback Mode = "rollback"
)

// UnmarshalJSON accepts the known modes; a plan file without one is an
// apply plan.
func (m *Mode) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	switch Mode(s) {
	case ModeApply, ModeDestroy, ModeRollback:
		*m = Mode(s)
	case "":
		*m = ModeApply
	default:
		return fmt.Errorf("unknown plan mode %q", s)
	}
	return nil
}

// Reversed reports whether the mode orders every change as the rollout
// reversed.
func (m Mode) Reversed() bool { return m == ModeRollback }

// title names the mode's work in headings: Rollout, Destroy, Rollback.
func (m Mode) title() string {
	switch m {
	case ModeDestroy:
		return "Destroy"
	case ModeRollback:
		return "Rollback"
	}
	return "Rollout"
}

// Did is the word progress lines use for a finished change.
func (m Mode) Did(a Action) string {
	switch m {
	case ModeDestroy:
		return "destroyed"
	case ModeRollback:
		return "rolled back"
	}
	return a.String()
}

package components

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"time"
)

// ErrNoPrevious means a component has no earlier generation on a host to
// go back to.
type ErrNoPrevious struct{ Host, Component string }

func (e *ErrNoPrevious) Error() string {
	return fmt.Sprintf("%s on %s has no earlier generation to roll back to", e.Component, e.Host)
}

// Rollback switches a component on a host back to its previous installed
// generation (binary and config, nothing uploaded), restarts it and gates
// it. When the gate fails, the generation it ran before is restored and
// gated, and a *GateError says so. installed.json then names the previous
// generation as current and the one rolled back from as the newest
// previous, so a second rollback returns to it.
func (in *Installer) Rollback(ctx context.Context, h Host, component string, ic InstalledComponent) (Generation, error) {
	if len(ic.Previous) == 0 {
		return Generation{}, &ErrNoPrevious{Host: h.Name(), Component: component}
	}
	prev := ic.Previous[0]
	unit := LayoutOf(h).Path(path.Join(ConfigRoot, component, strconv.Itoa(prev.Number), "unit.json"))
	if _, err := h.Run(ctx, "test -f "+shellQuote(unit)); err != nil {
		return Generation{}, fmt.Errorf("%s on %s: generation %d is gone from the host (%s): %w", component, h.Name(), prev.Number, unit, err)
	}
	if err := in.switchTo(ctx, h, component, prev.Number); err != nil {
		return Generation{}, fmt.Errorf("%s on %s: switch to generation %d: %w", component, h.Name(), prev.Number, err)
	}
	if out, err := in.gate(ctx, h, component, prev.Number); err != nil {
		ge := &GateError{Host: h.Name(), Component: component, Generation: prev.Number, Output: out, RolledBackTo: ic.Number}
		if err := in.switchTo(ctx, h, component, ic.Number); err != nil {
			ge.RollbackErr = err
		} else if out, err := in.gate(ctx, h, component, ic.Number); err != nil {
			ge.RollbackErr = fmt.Errorf("generation %d is not healthy either: %s", ic.Number, out)
		}
		return Generation{}, ge
	}
	err := in.record(ctx, h, component, func(inst *Installed) {
		cur := inst.Components[component]
		next := InstalledComponent{Generation: prev}
		next.UpdatedAt = time.Now().UTC()
		next.Previous = append([]Generation{cur.Generation}, cur.Previous[1:]...)
		inst.Components[component] = next
	})
	if err != nil {
		return Generation{}, fmt.Errorf("%s on %s: record the rollback: %w", component, h.Name(), err)
	}
	return prev, nil
}

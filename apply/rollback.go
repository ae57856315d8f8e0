package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/state"
)

// RollbackStep is one host's part of a rollback.
type RollbackStep struct {
	Host     string
	From, To components.Generation
}

// RollbackPlan lists, in the order they run, the hosts whose component
// goes back to its previous generation.
type RollbackPlan struct {
	Component string
	Steps     []RollbackStep
}

// PlanRollback works out a rollback of component on the given hosts (all
// hosts running it when hosts is empty) and refuses it when it would break
// the version rules. Hosts go in the reverse of the upgrade order.
func (s *Session) PlanRollback(ctx context.Context, component string, hosts []string) (RollbackPlan, World, error) {
	w, err := s.Observe(ctx)
	if err != nil {
		return RollbackPlan{}, World{}, err
	}
	rp := RollbackPlan{Component: component}
	var order []string
	for _, h := range s.Cluster.Hosts() {
		order = append(order, h.Name)
	}
	slices.Reverse(order)
	var errs []error
	for _, h := range order {
		if len(hosts) > 0 && !slices.Contains(hosts, h) {
			continue
		}
		ic, ok := w.Installed[h].Components[component]
		if !ok {
			if len(hosts) > 0 {
				errs = append(errs, fmt.Errorf("%s is not installed on %s", component, h))
			}
			continue
		}
		if len(ic.Previous) == 0 {
			errs = append(errs, &components.ErrNoPrevious{Host: h, Component: component})
			continue
		}
		rp.Steps = append(rp.Steps, RollbackStep{Host: h, From: ic.Generation, To: ic.Previous[0]})
	}
	for _, h := range hosts {
		if _, ok := s.Cluster.Host(h); !ok {
			errs = append(errs, fmt.Errorf("no host %q in the spec", h))
		}
	}
	if len(rp.Steps) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s is installed on no host", component))
	}
	if err := errors.Join(errs...); err != nil {
		return RollbackPlan{}, w, err
	}
	observed := observedVersions(w)
	after := observed.Clone()
	for _, st := range rp.Steps {
		after.set(st.Host, component, st.To.Version)
		if err := CheckChange(st.Host, component, st.From.Version, st.To.Version); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, CheckSnapshot(after, "after the rollback")...)
	if err := errors.Join(errs...); err != nil {
		return RollbackPlan{}, w, &RefusedError{Err: err}
	}
	return rp, w, nil
}

// Rollback carries out a rollback plan one host at a time, stopping at the
// first failure (whose host is put back on the generation it ran). The
// caller holds the state lock.
func (s *Session) Rollback(ctx context.Context, rp RollbackPlan, w World, runID string) error {
	st, err := s.Store.Read()
	if err != nil {
		return err
	}
	if st == nil {
		st = state.New(s.Cluster.Name())
	}
	journal, err := state.OpenJournal(s.Store.JournalPath())
	if err != nil {
		return err
	}
	defer journal.Close()
	inst := &components.Installer{Cluster: s.Cluster.Name(), GateTimeout: s.gateTimeout(), KeepGenerations: s.Cluster.Upgrade().KeepGenerations}
	for _, step := range rp.Steps {
		h, ok := s.Host(step.Host)
		if !ok {
			return fmt.Errorf("host %s is not connected", step.Host)
		}
		id := "rollback:" + rp.Component + ":" + step.Host
		entry := state.Entry{Run: runID, Step: id, Host: step.Host, Component: rp.Component, Action: "rollback", Version: step.To.Version}
		entry.Status = state.StepStarted
		if err := journal.Append(entry); err != nil {
			return err
		}
		s.logf("%s on %s: generation %d (%s) -> generation %d (%s) ...", rp.Component, step.Host,
			step.From.Number, step.From.Version, step.To.Number, step.To.Version)
		t0 := time.Now()
		ic := w.Installed[step.Host].Components[rp.Component]
		_, err := inst.Rollback(ctx, h, rp.Component, ic)
		entry.Status = state.StepDone
		if err != nil {
			entry.Status, entry.Detail = state.StepFailed, err.Error()
		}
		if jerr := journal.Append(entry); jerr != nil {
			return errors.Join(err, jerr)
		}
		if err != nil {
			return err
		}
		s.logf("  %s: healthy on generation %d after %s", step.Host, step.To.Number, time.Since(t0).Round(100*time.Millisecond))
		h0, _ := s.Cluster.Host(step.Host)
		st.SetComponent(step.Host, h0.Address, rp.Component, state.ComponentState{
			Version: step.To.Version, Generation: step.To.Number, ConfigHash: step.To.ConfigHash, UpdatedAt: time.Now().UTC(),
		})
		if err := s.Store.Write(st); err != nil {
			return err
		}
	}
	return nil
}

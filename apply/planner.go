package apply

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/internal/filesum"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/spec"
)

// Options say what a plan is for.
type Options struct {
	Mode plan.Mode
	// KeepData (destroy) keeps etcd's data, containerd's images, the etcd
	// snapshots and the local PKI.
	KeepData bool
	// Components and Hosts (rollback) choose what goes back to its
	// previous generation: the components on the hosts (every host running
	// them when Hosts is empty).
	Components []string
	Hosts      []string
}

// Computed is a plan with everything needed to carry it out.
type Computed struct {
	Plan      *plan.Plan
	World     World
	Desired   map[string]components.Desired // by object address (apply mode)
	PKIReport pki.Report
	// Probes (destroy) is what the agent runs and which of clusterctl's
	// folders hold anything, by host.
	Probes map[string]components.HostProbe
	pki    *memOverlay // certificates made or restored for this plan, not yet saved
}

// Plan observes the hosts and computes the plan for the mode. New
// certificates (and ones restored from the hosts after a lost state folder)
// exist only in memory until SavePKI.
func (s *Session) Plan(ctx context.Context, o Options) (*Computed, error) {
	if o.Mode == "" {
		o.Mode = plan.ModeApply
	}
	world, err := s.Observe(ctx)
	if err != nil {
		return nil, err
	}
	c := &Computed{World: world, Desired: map[string]components.Desired{}}
	var changes []plan.Change
	switch o.Mode {
	case plan.ModeApply:
		changes, err = s.planApply(ctx, c)
	case plan.ModeDestroy:
		changes, err = s.planDestroy(ctx, c, o)
	case plan.ModeRollback:
		changes, err = s.planRollback(c, o)
	default:
		err = fmt.Errorf("unknown plan mode %q", o.Mode)
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, ch := range changes {
		names = append(names, ch.Name)
	}
	steps, err := plan.Graph(changes, components.Order(s.Cluster.Upgrade().WorkerBatchSize, names...), components.Names(), o.Mode.Reversed())
	if err != nil {
		return nil, err
	}
	fp, err := s.fingerprint(world, c.Desired)
	if err != nil {
		return nil, err
	}
	// Changes read by address; steps keep the order they run in.
	slices.SortStableFunc(changes, func(a, b plan.Change) int { return cmp.Compare(a.Address, b.Address) })
	c.Plan = &plan.Plan{
		FormatVersion: plan.FormatVersion,
		Mode:          o.Mode,
		Cluster:       s.Cluster.Name(),
		CreatedAt:     time.Now().UTC().Truncate(time.Second),
		Fingerprint:   fp,
		Changes:       changes,
		Steps:         steps,
		Warnings:      append(slices.Clone(s.warnings), c.PKIReport.Warnings()...),
		KeepData:      o.KeepData,
	}
	return c, nil
}

// planApply diffs what the spec wants against what the hosts run.
func (s *Session) planApply(ctx context.Context, c *Computed) ([]plan.Change, error) {
	world := c.World
	// Hosts that lack what the node components need fail the plan before
	// anything (the local PKI included) is written.
	if err := components.Preflight(components.Input{Cluster: s.Cluster, Lab: world.Lab, Facts: world.Facts, Installed: world.Installed}); err != nil {
		return nil, err
	}
	table, err := pki.NewTable(components.PKICluster(s.Cluster))
	if err != nil {
		return nil, err
	}
	store := &memOverlay{base: pki.DirStore{Root: s.Store.PKIDir()}}
	if err := s.restorePKI(ctx, store, table, world); err != nil {
		return nil, err
	}
	report, err := pki.Ensure(store, table, pki.Options{})
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	c.PKIReport, c.pki = report, store
	// The Secret encryption keyring, one step closer to the spec's key.
	keys, err := components.PlanKeyring(ctx, store, s.Cluster, world.Installed, s.readHostFile)
	if err != nil {
		return nil, err
	}
	if keys.Restored != "" {
		s.logf("The local encryption keyring was missing: restored it from %s.", keys.Restored)
	}
	if keys.Note != "" {
		s.warnings = append(s.warnings, keys.Note)
	}
	sums := filesum.Open(s.Store.SumCachePath())
	in := components.Input{Cluster: s.Cluster, PKI: pkiView{r: store, t: table}, Cache: s.Cache,
		Platforms: world.Platforms, Lab: world.Lab, Facts: world.Facts, Installed: world.Installed, Sums: sums}
	desired, err := components.DesiredAll(in)
	if err != nil {
		return nil, err
	}
	// Only a cache: never the reason a state folder appears, and a folder
	// that cannot be written costs a re-read next time, nothing more.
	if _, err := os.Stat(s.Store.Dir); err == nil {
		_ = sums.Save()
	}
	// Every host that runs a component gets the agent first.
	var all []components.Desired
	for _, h := range s.Cluster.Hosts() {
		for _, d := range desired {
			if d.Host == h.Name {
				all = append(all, components.AgentDesired(h.Name, h.Address, s.agentBin))
				break
			}
		}
	}
	all = append(all, desired...)
	observed := components.ObservedVersions(world.Installed)
	if err := components.CheckUpgrade(observed, components.DesiredVersions(desired)); err != nil {
		return nil, &RefusedError{Err: err}
	}
	if err := components.CheckEtcdMembership(observed, components.DesiredVersions(desired)); err != nil {
		return nil, &RefusedError{Err: err}
	}
	var objs []plan.Object
	for _, d := range all {
		o, err := d.Object()
		if err != nil {
			return nil, err
		}
		c.Desired[o.Address()] = d
		objs = append(objs, o)
	}
	changes := plan.Diff(objs, world.Objects)
	return append(append(changes, certChanges(report)...), keys.Changes...), nil
}

// readHostFile reads a file on a connected host of the spec.
func (s *Session) readHostFile(ctx context.Context, host, path string) ([]byte, error) {
	cl, ok := s.Client(host)
	if !ok {
		return nil, fmt.Errorf("host %s is not connected", host)
	}
	return hostReader{ctx: ctx, c: cl}.Read(path)
}

// planDestroy removes every component installed.json records or the agent
// runs, on every host of the spec, and the agent with clusterctl's files
// wherever anything of clusterctl is. Hosts that lack a tool the cleanup
// needs fail the plan before anything is removed anywhere.
func (s *Session) planDestroy(ctx context.Context, c *Computed, o Options) ([]plan.Change, error) {
	var mu sync.Mutex
	c.Probes = map[string]components.HostProbe{}
	err := s.forEachHost(ctx, s.hosts(), func(ctx context.Context, h spec.Host, ch components.Host) error {
		p, err := components.ProbeHost(ctx, ch, components.UninstallOptions{KeepData: o.KeepData})
		mu.Lock()
		c.Probes[h.Name] = p
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, err
	}
	var changes []plan.Change
	var preflight []error
	for _, h := range s.hosts() {
		hc := components.Teardown(h.Name, c.World.Installed[h.Name], c.Probes[h.Name], o.KeepData)
		preflight = append(preflight, missingTools(h.Name, hc, c.World.Facts[h.Name].HasTool)...)
		changes = append(changes, hc...)
	}
	if len(preflight) > 0 {
		return nil, fmt.Errorf("preflight: nothing was removed:\n%w", errors.Join(preflight...))
	}
	return changes, nil
}

// missingTools lists the tools a host lacks for removing its components.
func missingTools(host string, changes []plan.Change, has func(string) bool) []error {
	var names []string
	for _, ch := range changes {
		names = append(names, ch.Name)
	}
	need := components.RemoveTools(names)
	var errs []error
	for _, tool := range slices.Sorted(maps.Keys(need)) {
		if !has(tool) {
			errs = append(errs, fmt.Errorf("host %s: %s is missing; removing %v needs it", host, tool, need[tool]))
		}
	}
	return errs
}

// planRollback puts the chosen components back on their previous
// generation, refusing what would break the version rules.
func (s *Session) planRollback(c *Computed, o Options) ([]plan.Change, error) {
	var changes []plan.Change
	var errs []error
	for _, h := range o.Hosts {
		if _, ok := s.Cluster.Host(h); !ok {
			errs = append(errs, fmt.Errorf("no host %q in the spec", h))
		}
	}
	after := components.ObservedVersions(c.World.Installed)
	for _, comp := range o.Components {
		found := false
		for _, h := range s.Cluster.Hosts() {
			if len(o.Hosts) > 0 && !slices.Contains(o.Hosts, h.Name) {
				continue
			}
			ic, ok := c.World.Installed[h.Name].Components[comp]
			if !ok {
				if len(o.Hosts) > 0 {
					errs = append(errs, fmt.Errorf("%s is not installed on %s", comp, h.Name))
				}
				continue
			}
			found = true
			if len(ic.Previous) == 0 {
				errs = append(errs, &components.ErrNoPrevious{Host: h.Name, Component: comp})
				continue
			}
			from, to := ic.Generation, ic.Previous[0]
			ch := plan.Change{Address: plan.Address(components.Kind, comp, h.Name), Kind: components.Kind, Name: comp, Host: h.Name,
				Action: plan.Update, Before: from.Version, After: to.Version,
				Reason: fmt.Sprintf("to generation %d", to.Number)}
			if from.Version != to.Version {
				ch.Action = plan.Upgrade // a version change, shown as such (a downgrade here)
				ch.Attrs = append(ch.Attrs, plan.AttrChange{Name: "version", Action: plan.Update, Before: from.Version, After: to.Version})
			}
			ch.Attrs = append(ch.Attrs, plan.AttrChange{Name: "generation", Action: plan.Update,
				Before: strconv.Itoa(from.Number), After: strconv.Itoa(to.Number)})
			changes = append(changes, ch)
			after.Set(h.Name, comp, to.Version)
			if err := components.CheckChange(h.Name, comp, from.Version, to.Version); err != nil {
				errs = append(errs, err)
			}
		}
		if !found && len(o.Hosts) == 0 {
			errs = append(errs, fmt.Errorf("%s is installed on no host", comp))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := errors.Join(components.CheckSnapshot(after, "after the rollback")...); err != nil {
		return nil, &RefusedError{Err: err}
	}
	return changes, nil
}

// fingerprint digests each spec file and variable value, the clusterctl
// binary, each artifact the plan installs, each host's observed state and
// the state serial.
func (s *Session) fingerprint(w World, desired map[string]components.Desired) (plan.Fingerprint, error) {
	fp := plan.Fingerprint{Files: map[string]string{}, Variables: map[string]string{}, Binary: "sha256:" + s.agentBin.SHA256,
		Artifacts: map[string]string{}, Hosts: w.Digests}
	for _, f := range s.Cluster.Files() {
		if !filepath.IsAbs(f) {
			f = filepath.Join(s.Dir, f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return plan.Fingerprint{}, fmt.Errorf("fingerprint the spec: %w", err)
		}
		fp.Files[filepath.Base(f)] = digest(b)
	}
	for _, v := range s.Cluster.Variables() {
		fp.Variables[v.Name] = digest(fmt.Appendf(nil, "%#v", v.Value))
	}
	for _, d := range desired {
		for _, a := range d.Artifacts {
			if a.SHA256 == s.agentBin.SHA256 {
				continue // the binary itself
			}
			fp.Artifacts[fmt.Sprintf("%s %s %s %s", a.Component, a.Version, w.Platforms[d.Host], a.Name)] = "sha256:" + a.SHA256
		}
	}
	st, err := s.Store.Read()
	if err != nil {
		return plan.Fingerprint{}, err
	}
	if st != nil {
		fp.StateLineage, fp.StateSerial = st.Lineage, st.Serial
	}
	return fp, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// RefusedError is a plan refused by the version-skew or etcd rules:
// nothing was changed.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string {
	return "the plan is refused, so nothing will be changed:\n  - " +
		strings.ReplaceAll(e.Err.Error(), "\n", "\n  - ")
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Stale compares a saved plan with the one computed now from the same
// world: it names what changed (spec file, variable, binary, artifact,
// host, state) and, should the world be the same but the planner come to
// other steps, the steps; nil when the saved plan can be carried out as
// stored.
func Stale(saved, now *plan.Plan) []string {
	if saved.Mode != now.Mode {
		return []string{fmt.Sprintf("it is a %s plan; this is %s", saved.Mode, now.Mode)}
	}
	if why := saved.Fingerprint.Compare(now.Fingerprint); len(why) > 0 {
		return why
	}
	var why []string
	for _, c := range saved.Changes {
		n, ok := now.Change(c.Address)
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("%s is no longer a change", c.Address))
		case n.Action != c.Action:
			why = append(why, fmt.Sprintf("%s would now %s, not %s", c.Address, n.Action, c.Action))
		}
	}
	for _, c := range now.Changes {
		if _, ok := saved.Change(c.Address); !ok && c.Kind == components.Kind {
			why = append(why, fmt.Sprintf("%s is a new change", c.Address))
		}
	}
	return why
}

// SavedOptions are the options a saved plan was made with, so that it can
// be computed again from the same world and compared.
func SavedOptions(p *plan.Plan) Options {
	o := Options{Mode: p.Mode, KeepData: p.KeepData}
	if p.Mode == plan.ModeRollback {
		hosts := map[string]bool{}
		for _, c := range p.Changes {
			if !slices.Contains(o.Components, c.Name) {
				o.Components = append(o.Components, c.Name)
			}
			hosts[c.Host] = true
		}
		o.Hosts = slices.Sorted(maps.Keys(hosts))
	}
	return o
}

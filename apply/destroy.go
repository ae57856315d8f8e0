package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/state"
)

// DestroyPlan is what `clusterctl destroy` removes, host by host, and in
// which order.
type DestroyPlan struct {
	Options components.UninstallOptions
	// Hosts with something of clusterctl on them, in spec order.
	Hosts []HostTeardown
	// Clean are the spec's hosts with nothing of clusterctl.
	Clean []string
	// NotInSpec are hosts the local state records but the spec no longer
	// names: destroy cannot reach them and leaves them alone.
	NotInSpec []string
	Steps     []plan.Step
}

// HostTeardown is one host's part of a destroy.
type HostTeardown struct {
	Host string
	// Components in the order they are removed; the agent (with
	// clusterctl's files) last.
	Components []TeardownItem
	// AgentUp: the agent answered. When it did not, it is started before
	// the first component is stopped through it.
	AgentUp bool
	// Kept are the data folders Options.KeepData keeps.
	Kept []string
}

// TeardownItem is one component to remove.
type TeardownItem struct {
	Name    string
	Version string // from installed.json; "" when only the agent knew it
}

// Count is how many components the destroy removes.
func (p *DestroyPlan) Count() int {
	n := 0
	for _, h := range p.Hosts {
		n += len(h.Components)
	}
	return n
}

// Empty reports whether there is nothing to destroy.
func (p *DestroyPlan) Empty() bool { return len(p.Hosts) == 0 }

// PlanDestroy observes every host (installed.json, what the agent runs,
// which of clusterctl's own folders hold anything) and plans the removal of
// all of it. Hosts that lack a tool the cleanup needs fail the plan before
// anything is removed anywhere.
func (s *Session) PlanDestroy(ctx context.Context, o components.UninstallOptions) (*DestroyPlan, error) {
	world, err := s.Observe(ctx)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	probes := map[string]components.HostProbe{}
	err = s.forEachHost(ctx, s.Cluster.Hosts(), func(ctx context.Context, h spec.Host, ch components.Host) error {
		p, err := components.ProbeHost(ctx, ch, o)
		mu.Lock()
		probes[h.Name] = p
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, err
	}
	dp := &DestroyPlan{Options: o}
	var preflight []error
	for _, h := range s.Cluster.Hosts() {
		t := teardown(h.Name, world.Installed[h.Name], probes[h.Name], o)
		if len(t.Components) == 0 {
			dp.Clean = append(dp.Clean, h.Name)
			continue
		}
		preflight = append(preflight, destroyTools(t, world.Facts[h.Name].HasTool)...)
		dp.Hosts = append(dp.Hosts, t)
	}
	if len(preflight) > 0 {
		return nil, fmt.Errorf("preflight: nothing was removed:\n%w", errors.Join(preflight...))
	}
	st, err := s.Store.Read()
	if err != nil {
		return nil, err
	}
	if st != nil {
		for _, name := range st.HostNames() {
			if _, ok := s.Cluster.Host(name); !ok {
				dp.NotInSpec = append(dp.NotInSpec, name)
			}
		}
	}
	dp.Steps = destroySteps(dp.Hosts)
	return dp, nil
}

// teardown decides what goes on one host: every component installed.json
// records or the agent runs, and the agent with clusterctl's files when
// anything of clusterctl is there.
func teardown(host string, inst components.Installed, p components.HostProbe, o components.UninstallOptions) HostTeardown {
	t := HostTeardown{Host: host, AgentUp: p.AgentUp}
	names := inst.Names()
	for _, n := range p.Running {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) > 0 || p.AgentBinary || len(p.Leftovers) > 0 {
		if !slices.Contains(names, components.AgentComponent) {
			names = append(names, components.AgentComponent)
		}
	}
	slices.SortStableFunc(names, func(a, b string) int { return destroyRank(a) - destroyRank(b) })
	for _, n := range names {
		t.Components = append(t.Components, TeardownItem{Name: n, Version: inst.Components[n].Version})
	}
	if o.KeepData {
		t.Kept = components.KeptData(names)
	}
	return t
}

// destroyStage is the stage of a component: 0 for components this
// clusterctl does not know (a newer one installed them), then 1.. for
// components.DestroyStages.
func destroyStage(name string) int {
	for i, stage := range components.DestroyStages() {
		if slices.Contains(stage, name) {
			return i + 1
		}
	}
	return 0
}

// destroyRank orders components by stage, a stage's components in their
// listed order.
func destroyRank(name string) int {
	stage := destroyStage(name)
	if stage == 0 {
		return 0
	}
	return stage*100 + slices.Index(components.DestroyStages()[stage-1], name)
}

// destroyTools lists the tools a host lacks for its cleanup: iptables for
// the kubelet's, kube-proxy's and the pod network's chains, ip for the pod
// routes and the bridge.
func destroyTools(t HostTeardown, has func(string) bool) []error {
	need := map[string][]string{}
	for _, c := range t.Components {
		switch c.Name {
		case bundle.Kubelet, bundle.KubeProxy:
			need["iptables"] = append(need["iptables"], c.Name)
		case bundle.CNI:
			need["iptables"] = append(need["iptables"], c.Name)
			need["ip"] = append(need["ip"], c.Name)
		}
	}
	var errs []error
	for _, tool := range []string{"ip", "iptables"} {
		if comps, ok := need[tool]; ok && !has(tool) {
			errs = append(errs, fmt.Errorf("host %s: %s is missing; removing %v needs it", t.Host, tool, comps))
		}
	}
	return errs
}

// destroySteps makes one step per component and host. Each stage of
// components.DestroyStages starts once the previous stage finished on every
// host; a host's components within a stage go one after the other. A
// failed step skips every later stage (the walker skips what depends on a
// failure), so etcd is never removed while an API server could not be
// stopped.
func destroySteps(hosts []HostTeardown) []plan.Step {
	var steps []plan.Step
	var prevStage []string
	for stage := 0; stage <= len(components.DestroyStages()); stage++ {
		var cur []string
		for _, h := range hosts {
			prevOnHost := ""
			for _, c := range h.Components {
				if destroyStage(c.Name) != stage {
					continue
				}
				id := plan.Address(components.Kind, c.Name, h.Host)
				deps := slices.Clone(prevStage)
				if prevOnHost != "" {
					deps = append(deps, prevOnHost)
				}
				steps = append(steps, plan.Step{ID: id, Component: c.Name, Action: plan.Delete, Hosts: []string{h.Host},
					Changes: []string{id}, DependsOn: deps})
				prevOnHost = id
				cur = append(cur, id)
			}
		}
		if len(cur) > 0 {
			prevStage = cur
		}
	}
	return steps
}

// DestroyStage is one stage of a destroy: its components, in the order a
// host removes them, and the hosts that have any of them.
type DestroyStage struct {
	Components []string
	Hosts      []string
}

// Order lists the stages of the destroy in the order they run.
func (p *DestroyPlan) Order() []DestroyStage {
	var out []DestroyStage
	for stage := 0; stage <= len(components.DestroyStages()); stage++ {
		var ds DestroyStage
		for _, h := range p.Hosts {
			on := false
			for _, c := range h.Components {
				if destroyStage(c.Name) != stage {
					continue
				}
				on = true
				if !slices.Contains(ds.Components, c.Name) {
					ds.Components = append(ds.Components, c.Name)
				}
			}
			if on {
				ds.Hosts = append(ds.Hosts, h.Host)
			}
		}
		if len(ds.Hosts) > 0 {
			slices.SortStableFunc(ds.Components, func(a, b string) int { return destroyRank(a) - destroyRank(b) })
			out = append(out, ds)
		}
	}
	return out
}

// DestroySummary is what a destroy did.
type DestroySummary struct {
	Result  Result
	Elapsed time.Duration
}

// Destroy carries out a destroy plan: steps in order with bounded
// parallelism, each recorded in the journal (run runID) and removed from
// the local state as it finishes. Closing stop finishes the running steps
// and starts no more. The caller holds the state lock.
func (s *Session) Destroy(ctx context.Context, dp *DestroyPlan, runID string, stop <-chan struct{}) (DestroySummary, error) {
	start := time.Now()
	st, err := s.Store.Read()
	if err != nil {
		return DestroySummary{}, err
	}
	journal, err := state.OpenJournal(s.Store.JournalPath())
	if err != nil {
		return DestroySummary{}, err
	}
	defer journal.Close()

	hosts := map[string]HostTeardown{}
	for _, h := range dp.Hosts {
		hosts[h.Host] = h
	}
	inst := &components.Installer{Cluster: s.Cluster.Name()}
	var (
		mu           sync.Mutex
		agentStarted = map[string]bool{}
	)
	// forget removes a component from the local state (when there is one:
	// a destroy never creates a state).
	forget := func(host, name string) error {
		mu.Lock()
		defer mu.Unlock()
		if st == nil {
			return nil
		}
		if _, ok := st.Component(host, name); !ok {
			return nil
		}
		st.RemoveComponent(host, name)
		return s.Store.Write(st)
	}
	runStep := func(ctx context.Context, step plan.Step) error {
		host, name := step.Hosts[0], step.Component
		h, ok := s.Host(host)
		if !ok {
			return fmt.Errorf("host %s is not connected", host)
		}
		t0 := time.Now()
		s.logf("- %s on %s ...", name, host)
		if name == components.AgentComponent {
			if err := inst.UninstallHost(ctx, h, dp.Options, hosts[host].Kept); err != nil {
				return err
			}
		} else {
			// Steps of one host never run at once: no lock needed beyond
			// the map's.
			mu.Lock()
			needAgent := !hosts[host].AgentUp && !agentStarted[host]
			agentStarted[host] = true
			mu.Unlock()
			if needAgent {
				if err := components.StartAgent(ctx, h); err != nil {
					return err
				}
			}
			if err := inst.Uninstall(ctx, h, name, dp.Options); err != nil {
				return err
			}
		}
		if err := forget(host, name); err != nil {
			return err
		}
		s.logf("  %s: %s destroyed in %s", host, name, time.Since(t0).Round(100*time.Millisecond))
		return nil
	}
	w := &Walker{MaxSteps: s.parallelism(), Journal: journal, RunID: runID}
	res := w.Walk(ctx, dp.Steps, runStep, stop)
	return DestroySummary{Result: res, Elapsed: time.Since(start)}, res.Err()
}

// RetireState ends the local state of a destroyed cluster by moving the
// state folder to <folder>.destroyed-<UTC time>: a later apply starts a new
// cluster (a new CA), while the old CA, the journal and the etcd snapshots
// stay recoverable there. The lock held in the folder (lockID) is
// released in its new place. It returns the new folder, or "" when there
// was no state folder.
func RetireState(store *state.FileStore, lockID string, now time.Time) (string, error) {
	if _, err := os.Stat(store.Dir); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	base := store.Dir + ".destroyed-" + now.UTC().Format("20060102T150405Z")
	dest := base
	// Two destroys within a second: the second folder gets a number.
	for i := 2; ; i++ {
		if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dest = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(store.Dir, dest); err != nil {
		return "", fmt.Errorf("move the state folder aside: %w", err)
	}
	if err := state.NewFileStore(dest).Unlock(lockID); err != nil {
		return dest, err
	}
	return dest, nil
}

package plan

import (
	"fmt"
	"slices"
	"strings"
)

// Step is one unit of work of an apply: one action of one component on one
// or more hosts, done together and then health-gated together. Steps run
// when every step they depend on has finished; a failed step skips
// everything that depends on it.
type Step struct {
	ID        string   `json:"id"`
	Component string   `json:"component"`
	Action    Action   `json:"action"`
	Hosts     []string `json:"hosts"`
	Changes   []string `json:"changes"` // addresses of the changes the step makes
	DependsOn []string `json:"depends_on,omitempty"`
}

// Rule says how changes of one component are ordered.
type Rule struct {
	// After lists components that must finish everywhere before this one
	// starts anywhere (e.g. kube-apiserver after etcd).
	After []string
	// AfterOnHost lists components that must finish on the same host first
	// (e.g. kubelet after containerd).
	AfterOnHost []string
	// Rolling makes upgrades, updates and replaces go in batches of
	// BatchSize hosts, one batch after another; creates and deletes go in
	// one step.
	Rolling   bool
	BatchSize int
	// RemoveAfterOnHost lists components that, on the same host, are
	// removed before this one, beyond the reverse of the rules above (the
	// kubelet after kube-proxy: the kubelet's cleanup sweeps the iptables
	// chains of both once neither runs).
	RemoveAfterOnHost []string
}

// Order maps component names to their rules. Components not in the order
// depend on nothing.
type Order map[string]Rule

// Graph orders component changes into steps following order. Changes of
// other kinds (certificates) are not steps of their own: components carry
// the files they need. Steps are returned in a valid execution order.
//
// Creates, upgrades and updates follow the rules; deletes follow them with
// the edges reversed (a component goes only after everything that needs it
// went, on the same host or anywhere), so a destroy, or a host leaving the
// spec, takes the rollout apart in the opposite order. With reverse, every
// change is ordered that way and rolling batches go in the reverse of the
// hosts' order: a rollback undoes an upgrade from its end.
func Graph(changes []Change, order Order, components []string, reverse bool) ([]Step, error) {
	byComp := map[string][]Change{}
	for _, c := range changes {
		if c.Kind != "component" || c.Action == NoOp {
			continue
		}
		byComp[c.Name] = append(byComp[c.Name], c)
	}
	// Components in the given order first, then any others by name, so the
	// step list reads in rollout order.
	names := slices.Clone(components)
	for _, n := range sortedKeys(byComp) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if reverse {
		slices.Reverse(names)
	}

	var steps []Step
	forward := map[string][]int{}  // component → its steps that follow the rules
	backward := map[string][]int{} // component → its steps that follow them reversed
	for _, comp := range names {
		cs := byComp[comp]
		if len(cs) == 0 {
			continue
		}
		rule := order[comp]
		var creates, rolling, deletes []Change
		for _, c := range cs {
			switch {
			case c.Action == Delete:
				deletes = append(deletes, c)
			case c.Action == Create && !reverse:
				creates = append(creates, c)
			case rule.Rolling || reverse:
				rolling = append(rolling, c)
			default:
				creates = append(creates, c) // non-rolling updates go at once
			}
		}
		if reverse {
			slices.Reverse(rolling)
		}
		var prev string
		add := func(s Step, back bool) {
			if prev != "" {
				s.DependsOn = append(s.DependsOn, prev)
			}
			prev = s.ID
			if back {
				backward[comp] = append(backward[comp], len(steps))
			} else {
				forward[comp] = append(forward[comp], len(steps))
			}
			steps = append(steps, s)
		}
		if len(creates) > 0 {
			add(groupStep(comp, creates, ""), false)
		}
		size := max(rule.BatchSize, 1)
		if reverse {
			size = 1
		}
		for i := 0; i < len(rolling); i += size {
			batch := rolling[i:min(i+size, len(rolling))]
			suffix := strings.Join(hostsOf(batch), ",")
			add(groupStep(comp, batch, suffix), reverse)
		}
		if len(deletes) > 0 {
			add(groupStep(comp, deletes, ""), true)
		}
	}

	// Cross-component edges: a forward step waits for the forward steps of
	// what its rule names; a reversed step of X waits for the reversed
	// steps of every component whose rule names X.
	for i := range steps {
		s := &steps[i]
		if slices.Contains(backward[s.Component], i) {
			for _, other := range names {
				rule := order[other]
				for _, j := range backward[other] {
					if j == i {
						continue
					}
					if slices.Contains(rule.After, s.Component) ||
						(slices.Contains(rule.AfterOnHost, s.Component) || slices.Contains(order[s.Component].RemoveAfterOnHost, other)) && overlaps(steps[j].Hosts, s.Hosts) {
						s.DependsOn = appendUnique(s.DependsOn, steps[j].ID)
					}
				}
			}
			continue
		}
		rule := order[s.Component]
		for _, dep := range rule.After {
			for _, j := range forward[dep] {
				s.DependsOn = appendUnique(s.DependsOn, steps[j].ID)
			}
		}
		for _, dep := range rule.AfterOnHost {
			for _, j := range forward[dep] {
				if overlaps(steps[j].Hosts, s.Hosts) {
					s.DependsOn = appendUnique(s.DependsOn, steps[j].ID)
				}
			}
		}
	}
	return topoSort(steps)
}

func groupStep(comp string, cs []Change, suffix string) Step {
	s := Step{Component: comp, Action: cs[0].Action}
	for _, c := range cs {
		s.Hosts = append(s.Hosts, c.Host)
		s.Changes = append(s.Changes, c.Address)
		if c.Action != s.Action {
			s.Action = Update // a mixed group: shown as an update
		}
	}
	s.ID = comp + ":" + s.Action.String()
	if suffix != "" {
		s.ID = comp + ":" + suffix // a rolling batch: its hosts
	}
	return s
}

func hostsOf(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Host
	}
	return out
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func appendUnique(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// topoSort returns steps so that each comes after its dependencies, keeping
// the given order where it is free to, and fails on a cycle.
func topoSort(steps []Step) ([]Step, error) {
	index := map[string]int{}
	for i, s := range steps {
		if _, dup := index[s.ID]; dup {
			return nil, fmt.Errorf("plan: two steps have the ID %q", s.ID)
		}
		index[s.ID] = i
	}
	done := make([]bool, len(steps))
	var out []Step
	for len(out) < len(steps) {
		progressed := false
		for i, s := range steps {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range s.DependsOn {
				j, ok := index[d]
				if !ok {
					return nil, fmt.Errorf("plan: step %s depends on unknown step %s", s.ID, d)
				}
				if !done[j] {
					ready = false
					break
				}
			}
			if ready {
				done[i] = true
				out = append(out, s)
				progressed = true
			}
		}
		if !progressed {
			var stuck []string
			for i, s := range steps {
				if !done[i] {
					stuck = append(stuck, s.ID)
				}
			}
			return nil, fmt.Errorf("plan: steps depend on each other in a cycle: %s", strings.Join(stuck, ", "))
		}
	}
	return out, nil
}

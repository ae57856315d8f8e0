package components

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/spec/skew"
)

// Versions is a snapshot of which version of each component runs on each
// host: host → component → version. It is what the skew rules judge.
type Versions map[string]map[string]string

// Clone returns a deep copy.
func (v Versions) Clone() Versions {
	out := Versions{}
	for h, m := range v {
		out[h] = maps.Clone(m)
	}
	return out
}

func (v Versions) Set(host, component, version string) {
	if v[host] == nil {
		v[host] = map[string]string{}
	}
	v[host][component] = version
}

// instances returns every host's version of a component, in host order.
func (v Versions) instances(component string) []instance {
	var out []instance
	for _, h := range slices.Sorted(maps.Keys(v)) {
		if s, ok := v[h][component]; ok && s != "" {
			out = append(out, instance{host: h, version: s})
		}
	}
	return out
}

type instance struct{ host, version string }

// ErrSkew marks a refusal by the version-skew or etcd rules; retrying does
// not help, changing the spec does.
var ErrSkew = errors.New("version rules")

// SkewError is one refused combination, naming the hosts.
type SkewError struct {
	Where string // "on cp-1", "cp-1 and cp-2", "after the kube-apiserver upgrade"
	Err   *skew.Error
}

func (e *SkewError) Error() string { return e.Err.Error() + " (" + e.Where + ")" }
func (e *SkewError) Unwrap() error { return ErrSkew }

// CheckSnapshot applies the version-skew policy to one state of the
// cluster: kube-apiserver instances at most one minor apart; every
// controller-manager and scheduler not newer than any kube-apiserver and at
// most one minor older; every kubelet and kube-proxy not newer than any
// kube-apiserver and at most three minors older; etcd a supported version.
func CheckSnapshot(v Versions, when string) []error {
	var errs []error
	apis := v.instances(bundle.KubeAPIServer)
	var apiVers []skew.Version
	for _, a := range apis {
		av, err := skew.Parse(a.version)
		if err != nil {
			errs = append(errs, fmt.Errorf("kube-apiserver on %s: %w", a.host, err))
			continue
		}
		apiVers = append(apiVers, av)
	}
	if err := skew.APIServers(apiVers); err != nil {
		errs = append(errs, wrapSkew(err, when))
	}
	for _, comp := range []string{bundle.KubeControllerManager, bundle.KubeScheduler, bundle.Kubelet, bundle.KubeProxy} {
		for _, inst := range v.instances(comp) {
			cv, err := skew.Parse(inst.version)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s on %s: %w", comp, inst.host, err))
				continue
			}
			for i, av := range apiVers {
				if err := skew.Check(comp, cv, av); err != nil {
					errs = append(errs, wrapSkew(err, fmt.Sprintf("%s on %s, kube-apiserver on %s, %s", comp, inst.host, apis[i].host, when)))
					break
				}
			}
		}
	}
	for _, inst := range v.instances(bundle.Etcd) {
		ev, err := skew.Parse(inst.version)
		if err != nil {
			errs = append(errs, fmt.Errorf("etcd on %s: %w", inst.host, err))
			continue
		}
		if err := skew.Etcd(ev); err != nil {
			errs = append(errs, wrapSkew(err, "on "+inst.host))
		}
	}
	return errs
}

func wrapSkew(err error, where string) error {
	var se *skew.Error
	if errors.As(err, &se) {
		return &SkewError{Where: where, Err: se}
	}
	return err
}

// stepRule says whether a component's version changes are checked one
// minor at a time: the control plane and etcd migrate stored data, so they
// move one minor at a time; kubelet and kube-proxy may catch up several.
func stepRule(component string) bool {
	switch component {
	case bundle.Etcd, bundle.KubeAPIServer, bundle.KubeControllerManager, bundle.KubeScheduler:
		return true
	}
	return false
}

// CheckChange checks one component's version change on one host: one
// minor at a time for the control plane and etcd, and never an etcd minor
// downgrade (that needs etcd's own downgrade procedure, see
// docs/upgrades.md).
func CheckChange(host, component, from, to string) error {
	if from == "" || to == "" || from == to || !stepRule(component) {
		return nil
	}
	fv, err := skew.Parse(from)
	if err != nil {
		return fmt.Errorf("%s on %s: installed version: %w", component, host, err)
	}
	tv, err := skew.Parse(to)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", component, host, err)
	}
	if err := skew.Step(component, fv, tv); err != nil {
		return wrapSkew(err, "on "+host)
	}
	if component == bundle.Etcd && tv.Major == fv.Major && tv.Minor < fv.Minor {
		return &ruleError{msg: fmt.Sprintf("etcd %s -> %s is a minor downgrade: an older etcd minor cannot simply run the newer data; "+
			"follow etcd's downgrade procedure (docs/upgrades.md) or keep %s (on %s)", fv, tv, fv, host)}
	}
	return nil
}

// ruleError is a refusal by a rule the skew package does not hold.
type ruleError struct{ msg string }

func (e *ruleError) Error() string { return e.msg }
func (e *ruleError) Unwrap() error { return ErrSkew }

// CheckUpgrade checks a planned move from the observed versions to the
// desired ones: each change one step at a time, and every state the
// rollout passes through within the skew policy. The rollout order
// (components.Order) is etcd, kube-apiserver host by host, then
// controller-manager and scheduler, then kubelet and kube-proxy; the states
// checked are the observed one, each kube-apiserver upgraded in turn, and
// the final one.
func CheckUpgrade(observed, desired Versions) error {
	var errs []error
	for _, h := range slices.Sorted(maps.Keys(desired)) {
		for _, comp := range slices.Sorted(maps.Keys(desired[h])) {
			if err := CheckChange(h, comp, observed[h][comp], desired[h][comp]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// The states of the rollout: the apiservers one by one (with etcd done),
	// then everything.
	state := observed.Clone()
	for _, inst := range desired.instances(bundle.Etcd) {
		state.Set(inst.host, bundle.Etcd, inst.version)
	}
	seen := map[string]bool{}
	addAll := func(es []error) {
		for _, e := range es {
			if !seen[e.Error()] {
				seen[e.Error()] = true
				errs = append(errs, e)
			}
		}
	}
	for _, inst := range desired.instances(bundle.KubeAPIServer) {
		if state[inst.host][bundle.KubeAPIServer] == inst.version {
			continue
		}
		state.Set(inst.host, bundle.KubeAPIServer, inst.version)
		addAll(CheckSnapshot(state, "while kube-apiserver is upgraded on "+inst.host))
	}
	addAll(CheckSnapshot(desired, "after the rollout"))
	return errors.Join(errs...)
}

// checkEtcdMembership refuses to add or remove etcd members of a running
// cluster: a new member must join with `member add` and
// initial-cluster-state=existing, and a removed one must leave the
// membership first, or quorum is at risk. clusterctl does not do either yet,
// so the plan stops before anything changes.
func CheckEtcdMembership(observed, desired Versions) error {
	var running, wanted []string
	for _, i := range observed.instances(bundle.Etcd) {
		running = append(running, i.host)
	}
	for _, i := range desired.instances(bundle.Etcd) {
		wanted = append(wanted, i.host)
	}
	if len(running) == 0 || slices.Equal(running, wanted) {
		return nil
	}
	var added, removed []string
	for _, h := range wanted {
		if !slices.Contains(running, h) {
			added = append(added, h)
		}
	}
	for _, h := range running {
		if !slices.Contains(wanted, h) {
			removed = append(removed, h)
		}
	}
	msg := "etcd runs on " + strings.Join(running, ", ") + " and the spec wants it on " + strings.Join(wanted, ", ")
	if len(added) > 0 {
		msg += "; adding members (" + strings.Join(added, ", ") + ")"
	}
	if len(removed) > 0 {
		msg += "; removing members (" + strings.Join(removed, ", ") + ")"
	}
	return &ruleError{msg: msg + ": changing the members of a running etcd cluster is not supported yet (a member must join with `etcdctl member add` and leave with `member remove` to keep quorum), so a host with etcd cannot join or leave the spec, and nothing of it is removed, until etcd membership changes are built; keep the etcd hosts as they are"}
}

// ObservedVersions is what the hosts run, by host and component (the agent
// aside: its version is its binary's digest).
func ObservedVersions(installed map[string]Installed) Versions {
	v := Versions{}
	for host, inst := range installed {
		for name, c := range inst.Components {
			if name != AgentComponent {
				v.Set(host, name, c.Version)
			}
		}
	}
	return v
}

// DesiredVersions is what the spec wants, by host and component.
func DesiredVersions(ds []Desired) Versions {
	v := Versions{}
	for _, d := range ds {
		v.Set(d.Host, d.Component, d.Version)
	}
	return v
}

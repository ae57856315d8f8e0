// Package skew holds the Kubernetes version-skew policy as pure functions over
// plain versions, so that spec validation (versions as written) and the
// upgrade engine (versions observed on hosts) apply the same rules.
//
// Every refusal is an *Error that names the rule and the versions involved.
package skew

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a release version MAJOR.MINOR.PATCH with an optional
// pre-release suffix ("1.37.0-rc.1"). Build metadata is dropped.
type Version struct {
	Major, Minor, Patch int
	Pre                 string
}

// Parse reads "1.37.2", "v1.37.2" or "1.37.0-rc.1".
func Parse(s string) (Version, error) {
	orig := s
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	var v Version
	if i := strings.IndexByte(s, '-'); i >= 0 {
		v.Pre = s[i+1:]
		s = s[:i]
		if v.Pre == "" || !validPre(v.Pre) {
			return Version{}, fmt.Errorf("version %q: malformed pre-release suffix", orig)
		}
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH, like 1.37.2", orig)
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := parseNum(p)
		if err != nil {
			return Version{}, fmt.Errorf("version %q: %w", orig, err)
		}
		nums[i] = n
	}
	v.Major, v.Minor, v.Patch = nums[0], nums[1], nums[2]
	return v, nil
}

// MustParse is Parse for versions written in code; it panics on a typo.
func MustParse(s string) Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

func parseNum(p string) (int, error) {
	if p == "" {
		return 0, fmt.Errorf("empty number")
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("number %q has a leading zero", p)
	}
	for _, r := range p {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a number", p)
		}
	}
	n, err := strconv.Atoi(p)
	if err != nil || n > 1<<20 {
		return 0, fmt.Errorf("number %q is out of range", p)
	}
	return n, nil
}

func validPre(s string) bool {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		for _, r := range id {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-') {
				return false
			}
		}
	}
	return true
}

// String prints the version without a leading "v".
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	return s
}

// Compare returns -1, 0 or +1. A pre-release sorts before its release;
// pre-release suffixes compare as strings, which is enough for rc.N.
func (v Version) Compare(o Version) int {
	for _, d := range [...]int{v.Major - o.Major, v.Minor - o.Minor, v.Patch - o.Patch} {
		if d < 0 {
			return -1
		}
		if d > 0 {
			return 1
		}
	}
	switch {
	case v.Pre == o.Pre:
		return 0
	case v.Pre == "":
		return 1
	case o.Pre == "":
		return -1
	case v.Pre < o.Pre:
		return -1
	default:
		return 1
	}
}

// MinorString returns "MAJOR.MINOR".
func (v Version) MinorString() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// minorsBehind is how many minor releases v is older than ref (negative when
// newer). Only meaningful within one major version.
func minorsBehind(v, ref Version) int { return ref.Minor - v.Minor }

// Rule names. Each reads as a requirement on the component it concerns:
// "kube-scheduler" + " " + RuleNotNewer.
const (
	RuleNotNewer       = "not newer than kube-apiserver"
	RuleControlPlane   = "at most 1 minor older than kube-apiserver"
	RuleNode           = "at most 3 minors older than kube-apiserver"
	RuleSameMajor      = "same major version as kube-apiserver"
	RuleAPIServers     = "instances at most 1 minor apart"
	RuleEtcdMinimum    = "3.5 or newer"
	RuleOneMinorStep   = "upgrades move one minor at a time"
	RuleMinorDowngrade = "downgrades move back at most one minor"
)

// Error is a refused version combination.
type Error struct {
	Rule      string  // one of the Rule* constants
	Component string  // the component whose version is refused
	Version   Version // its version
	Reference string  // what it is compared with ("kube-apiserver", or the component's current version)
	RefVer    Version
	msg       string
}

func (e *Error) Error() string { return e.msg }

// Node-side components may lag kube-apiserver by up to three minors, the
// controller-manager and scheduler by one (the upstream version-skew policy).
const (
	maxControlPlaneLag = 1
	maxNodeLag         = 3
)

// The oldest etcd the supported Kubernetes releases talk to: Kubernetes
// needs the etcd v3 API and no longer supports etcd before 3.5.
const (
	etcdMinMajor = 3
	etcdMinMinor = 5
)

// Check applies the rule for component against the kube-apiserver version.
// Components without a skew rule against the apiserver (containerd, cni,
// kube-apiserver itself) always pass; use Etcd for etcd.
func Check(component string, v, apiserver Version) error {
	switch component {
	case "kube-controller-manager", "kube-scheduler":
		return againstAPIServer(component, v, apiserver, maxControlPlaneLag, RuleControlPlane)
	case "kubelet", "kube-proxy":
		return againstAPIServer(component, v, apiserver, maxNodeLag, RuleNode)
	case "etcd":
		return Etcd(v)
	}
	return nil
}

func againstAPIServer(component string, v, api Version, maxLag int, lagRule string) error {
	const ref = "kube-apiserver"
	e := &Error{Component: component, Version: v, Reference: ref, RefVer: api}
	switch {
	case v.Major != api.Major:
		e.Rule = RuleSameMajor
		e.msg = fmt.Sprintf("%s %s and %s %s differ in major version: the version-skew policy requires %s to have the same major version as %s", component, v, ref, api, component, ref)
	case v.Compare(api) > 0:
		e.Rule = RuleNotNewer
		e.msg = fmt.Sprintf("%s %s is newer than %s %s: the version-skew policy forbids %s newer than %s", component, v, ref, api, component, ref)
	case minorsBehind(v, api) > maxLag:
		e.Rule = lagRule
		e.msg = fmt.Sprintf("%s %s is %d minors older than %s %s: the version-skew policy allows %s at most %s older than %s", component, v, minorsBehind(v, api), ref, api, component, plural(maxLag, "minor"), ref)
	default:
		return nil
	}
	return e
}

// APIServers checks the versions of kube-apiserver instances running side
// by side (HA control planes, mid-upgrade): newest and oldest at most one
// minor apart.
func APIServers(versions []Version) error {
	if len(versions) == 0 {
		return nil
	}
	oldest, newest := versions[0], versions[0]
	for _, v := range versions[1:] {
		if v.Compare(oldest) < 0 {
			oldest = v
		}
		if v.Compare(newest) > 0 {
			newest = v
		}
	}
	if oldest.Major == newest.Major && newest.Minor-oldest.Minor <= maxControlPlaneLag {
		return nil
	}
	return &Error{
		Rule: RuleAPIServers, Component: "kube-apiserver", Version: oldest, Reference: "kube-apiserver", RefVer: newest,
		msg: fmt.Sprintf("kube-apiserver %s and kube-apiserver %s are more than one minor apart: the version-skew policy allows kube-apiserver instances at most 1 minor apart", oldest, newest),
	}
}

// Etcd checks that an etcd version is one Kubernetes can use.
func Etcd(v Version) error {
	etcdMinimum := Version{Major: etcdMinMajor, Minor: etcdMinMinor}
	if v.Major == etcdMinimum.Major && v.Compare(etcdMinimum) >= 0 {
		return nil
	}
	return &Error{
		Rule: RuleEtcdMinimum, Component: "etcd", Version: v, Reference: "etcd minimum", RefVer: etcdMinimum,
		msg: fmt.Sprintf("etcd %s is not supported: Kubernetes requires etcd 3.x at %s or newer", v, etcdMinimum.MinorString()),
	}
}

// Step checks one version change of a running component (upgrade or
// rollback): an upgrade may not skip a minor release (etcd and Kubernetes
// both migrate data one minor at a time) and a downgrade may go back at
// most one minor (the rollback of a failed upgrade). Patch changes are free.
func Step(component string, from, to Version) error {
	e := &Error{Component: component, Version: to, Reference: component + " (current)", RefVer: from}
	switch {
	case from.Major != to.Major:
		e.Rule = RuleOneMinorStep
		e.msg = fmt.Sprintf("%s %s -> %s changes the major version: upgrades move one minor at a time", component, from, to)
	case to.Minor-from.Minor > 1:
		e.Rule = RuleOneMinorStep
		e.msg = fmt.Sprintf("%s %s -> %s skips %s: upgrades move one minor at a time", component, from, to, plural(to.Minor-from.Minor-1, "minor release"))
	case from.Minor-to.Minor > 1:
		e.Rule = RuleMinorDowngrade
		e.msg = fmt.Sprintf("%s %s -> %s goes back %d minors: downgrades move back at most one minor", component, from, to, from.Minor-to.Minor)
	default:
		return nil
	}
	return e
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

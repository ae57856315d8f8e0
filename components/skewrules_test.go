package components

import (
	"errors"
	"strings"
	"testing"
)

// cluster builds a Versions snapshot: a 1.36.3 / etcd 3.6.16 cluster with
// two control planes and a worker, changed by the given overrides
// ("host/component=version").
func cluster(over ...string) Versions {
	v := Versions{}
	for _, h := range []string{"cp-1", "cp-2"} {
		v.Set(h, "etcd", "3.6.16")
		v.Set(h, "kube-apiserver", "1.36.3")
		v.Set(h, "kube-controller-manager", "1.36.3")
		v.Set(h, "kube-scheduler", "1.36.3")
		v.Set(h, "kubelet", "1.36.3")
		v.Set(h, "kube-proxy", "1.36.3")
	}
	v.Set("w-1", "kubelet", "1.36.3")
	v.Set("w-1", "kube-proxy", "1.36.3")
	for _, o := range over {
		hc, ver, _ := strings.Cut(o, "=")
		h, c, _ := strings.Cut(hc, "/")
		v.Set(h, c, ver)
	}
	return v
}

func all(comp, version string, hosts ...string) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h+"/"+comp+"="+version)
	}
	return out
}

func join(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestCheckUpgrade(t *testing.T) {
	cps := []string{"cp-1", "cp-2"}
	nodes := []string{"cp-1", "cp-2", "w-1"}
	full137 := join(all("etcd", "3.7.3", cps...), all("kube-apiserver", "1.37.2", cps...),
		all("kube-controller-manager", "1.37.2", cps...), all("kube-scheduler", "1.37.2", cps...),
		all("kubelet", "1.37.2", nodes...), all("kube-proxy", "1.37.2", nodes...))
	tests := []struct {
		name     string
		observed Versions
		desired  Versions
		rule     string // "" = allowed
	}{
		{"nothing changes", cluster(), cluster(), ""},
		{"patch upgrade", cluster(), cluster(all("kube-apiserver", "1.36.4", cps...)...), ""},
		{"one minor, everything", cluster(), cluster(full137...), ""},
		{"control plane only, nodes stay one minor behind", cluster(),
			cluster(join(all("etcd", "3.7.3", cps...), all("kube-apiserver", "1.37.2", cps...), all("kube-controller-manager", "1.37.2", cps...), all("kube-scheduler", "1.37.2", cps...))...), ""},
		{"nodes three minors behind after the upgrade", cluster(all("kubelet", "1.34.0", nodes...)...),
			cluster(join(all("kubelet", "1.34.0", nodes...), all("kube-apiserver", "1.37.2", cps...), all("kube-controller-manager", "1.37.2", cps...), all("kube-scheduler", "1.37.2", cps...))...), ""},
		{"apiserver skips a minor", cluster(), cluster(all("kube-apiserver", "1.38.0", cps...)...), "upgrades move one minor at a time"},
		{"controller-manager skips a minor", cluster(), cluster(join(all("kube-apiserver", "1.37.2", cps...), all("kube-controller-manager", "1.38.0", cps...))...), "one minor at a time"},
		{"etcd skips a minor", cluster(), cluster(all("etcd", "3.8.0", cps...)...), "upgrades move one minor at a time"},
		{"etcd minor downgrade", cluster(all("etcd", "3.7.3", cps...)...), cluster(), "etcd 3.7.3 -> 3.6.16 is a minor downgrade"},
		{"etcd patch downgrade", cluster(all("etcd", "3.6.17", cps...)...), cluster(), ""},
		{"etcd too old", cluster(), cluster(all("etcd", "3.4.0", cps...)...), "3.5 or newer"},
		{"apiserver downgrade by two minors", cluster(all("kube-apiserver", "1.38.0", cps...)...), cluster(), "downgrades move back at most one minor"},
		{"nodes left four minors behind", cluster(all("kubelet", "1.33.0", "w-1")...),
			cluster(join(all("kubelet", "1.33.0", "w-1"), all("kube-apiserver", "1.37.2", cps...), all("kube-controller-manager", "1.37.2", cps...), all("kube-scheduler", "1.37.2", cps...), all("kubelet", "1.37.2", "cp-1", "cp-2"))...),
			"at most 3 minors older"},
		{"scheduler left two minors behind", cluster(all("kube-apiserver", "1.37.0", cps...)...),
			cluster(join(all("kube-apiserver", "1.38.0", cps...), all("kube-scheduler", "1.36.3", cps...), all("kube-controller-manager", "1.38.0", cps...))...),
			"at most 1 minor older"},
		{"kubelet newer than apiserver", cluster(), cluster(all("kubelet", "1.37.2", "w-1")...), "newer than kube-apiserver"},
		{"kube-proxy newer than apiserver", cluster(), cluster(all("kube-proxy", "1.37.2", "w-1")...), "newer than kube-apiserver"},
		{"controller-manager newer than apiserver", cluster(), cluster(all("kube-controller-manager", "1.37.2", cps...)...), "newer than kube-apiserver"},
		{"apiservers two minors apart mid-rollout", cluster(join(all("kube-apiserver", "1.35.0", "cp-2"), all("kube-controller-manager", "1.35.0", cps...), all("kube-scheduler", "1.35.0", cps...), all("kubelet", "1.35.0", nodes...), all("kube-proxy", "1.35.0", nodes...))...),
			cluster(join(all("kube-apiserver", "1.37.2", "cp-1"), all("kube-apiserver", "1.36.3", "cp-2"), all("kube-controller-manager", "1.36.3", cps...), all("kube-scheduler", "1.36.3", cps...))...),
			"instances at most 1 minor apart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckUpgrade(tt.observed, tt.desired)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.rule) {
				t.Fatalf("want a refusal naming %q, got %v", tt.rule, err)
			}
			if !errors.Is(err, ErrSkew) {
				t.Fatalf("refusal does not match ErrSkew: %v", err)
			}
		})
	}
}

func TestCheckUpgradeNamesHostsAndVersions(t *testing.T) {
	err := CheckUpgrade(cluster(), cluster(all("kube-apiserver", "1.38.0", "cp-2")...))
	if err == nil {
		t.Fatal("want a refusal")
	}
	for _, want := range []string{"kube-apiserver 1.36.3 -> 1.38.0", "cp-2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %q", err, want)
		}
	}
}

func TestEtcdMembershipChangesAreRefused(t *testing.T) {
	three := cluster(all("etcd", "3.6.16", "cp-3")...)
	if err := CheckEtcdMembership(cluster(), cluster()); err != nil {
		t.Fatalf("same members refused: %v", err)
	}
	if err := CheckEtcdMembership(Versions{}, three); err != nil {
		t.Fatalf("a new cluster refused: %v", err)
	}
	err := CheckEtcdMembership(cluster(), three)
	if err == nil || !strings.Contains(err.Error(), "adding members (cp-3)") || !errors.Is(err, ErrSkew) {
		t.Fatalf("adding a member: %v", err)
	}
	err = CheckEtcdMembership(three, cluster())
	if err == nil || !strings.Contains(err.Error(), "removing members (cp-3)") {
		t.Fatalf("removing a member: %v", err)
	}
}

package skew

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]Version{
		"1.37.2":       {1, 37, 2, ""},
		"v1.36.3":      {1, 36, 3, ""},
		"3.6.16":       {3, 6, 16, ""},
		"1.37.0-rc.1":  {1, 37, 0, "rc.1"},
		"1.37.0+build": {1, 37, 0, ""},
		"0.0.0":        {0, 0, 0, ""},
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1", "1.37", "1.37.2.1", "1.x.2", "01.2.3", "1.37.-2", "1.37.2-", "1.37.2-rc..1", " 1.37.2", "1.37.2 ", "99999999999999999999.1.1", "vv1.2.3"} {
		if v, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, v)
		}
	}
}

func TestCompare(t *testing.T) {
	ordered := []string{"1.35.9", "1.36.0-rc.1", "1.36.0-rc.2", "1.36.0", "1.36.3", "1.37.0", "2.0.0"}
	for i := range ordered {
		for j := range ordered {
			a, b := MustParse(ordered[i]), MustParse(ordered[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%s.Compare(%s) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		component, v, api string
		rule              string // "" means allowed
		msg               string // substring of the error
	}{
		{"kube-scheduler", "1.37.2", "1.37.2", "", ""},
		{"kube-scheduler", "1.36.3", "1.37.2", "", ""},
		{"kube-scheduler", "1.37.1", "1.37.2", "", ""},
		{"kube-scheduler", "1.37.2", "1.36.3", RuleNotNewer, "kube-scheduler 1.37.2 is newer than kube-apiserver 1.36.3: the version-skew policy forbids kube-scheduler newer than kube-apiserver"},
		{"kube-scheduler", "1.37.3", "1.37.2", RuleNotNewer, "newer than kube-apiserver"},
		{"kube-controller-manager", "1.35.0", "1.37.2", RuleControlPlane, "kube-controller-manager 1.35.0 is 2 minors older than kube-apiserver 1.37.2: the version-skew policy allows kube-controller-manager at most 1 minor older than kube-apiserver"},
		{"kube-controller-manager", "2.37.0", "1.37.2", RuleSameMajor, "differ in major version"},
		{"kubelet", "1.34.0", "1.37.2", "", ""},
		{"kubelet", "1.33.9", "1.37.2", RuleNode, "kubelet 1.33.9 is 4 minors older than kube-apiserver 1.37.2: the version-skew policy allows kubelet at most 3 minors older than kube-apiserver"},
		{"kube-proxy", "1.37.2", "1.36.3", RuleNotNewer, "forbids kube-proxy newer than kube-apiserver"},
		{"kube-proxy", "1.36.3", "1.37.2", "", ""},
		{"containerd", "2.4.2", "1.37.2", "", ""},
		{"kube-apiserver", "1.37.2", "1.36.3", "", ""},
		{"etcd", "3.6.16", "1.37.2", "", ""},
		{"etcd", "3.4.30", "1.37.2", RuleEtcdMinimum, "etcd 3.4.30 is not supported: Kubernetes requires etcd 3.x at 3.5 or newer"},
		{"etcd", "4.0.0", "1.37.2", RuleEtcdMinimum, "not supported"},
	}
	for _, tt := range tests {
		err := Check(tt.component, MustParse(tt.v), MustParse(tt.api))
		if tt.rule == "" {
			if err != nil {
				t.Errorf("Check(%s %s vs %s) = %v, want allowed", tt.component, tt.v, tt.api, err)
			}
			continue
		}
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("Check(%s %s vs %s) = %v, want a *skew.Error", tt.component, tt.v, tt.api, err)
			continue
		}
		if se.Rule != tt.rule || !strings.Contains(se.Error(), tt.msg) || se.Component != tt.component {
			t.Errorf("Check(%s %s vs %s) = rule %q, %q; want rule %q containing %q", tt.component, tt.v, tt.api, se.Rule, se.Error(), tt.rule, tt.msg)
		}
	}
}

func TestAPIServers(t *testing.T) {
	ok := [][]string{nil, {"1.37.2"}, {"1.36.3", "1.37.2", "1.37.0"}}
	for _, vs := range ok {
		if err := APIServers(parseAll(vs)); err != nil {
			t.Errorf("APIServers(%v) = %v", vs, err)
		}
	}
	err := APIServers(parseAll([]string{"1.37.2", "1.35.1", "1.36.0"}))
	var se *Error
	if !errors.As(err, &se) || se.Rule != RuleAPIServers || !strings.Contains(err.Error(), "1.35.1 and kube-apiserver 1.37.2") {
		t.Errorf("APIServers 1.35/1.37 = %v", err)
	}
}

func TestStep(t *testing.T) {
	tests := []struct {
		from, to, rule string
	}{
		{"1.36.3", "1.37.2", ""},
		{"1.37.2", "1.37.0", ""},
		{"1.37.2", "1.36.3", ""},
		{"3.6.16", "3.7.3", ""},
		{"1.35.0", "1.37.2", RuleOneMinorStep},
		{"1.37.2", "2.0.0", RuleOneMinorStep},
		{"1.37.2", "1.35.0", RuleMinorDowngrade},
	}
	for _, tt := range tests {
		err := Step("kube-apiserver", MustParse(tt.from), MustParse(tt.to))
		var se *Error
		switch {
		case tt.rule == "" && err != nil:
			t.Errorf("Step(%s -> %s) = %v, want allowed", tt.from, tt.to, err)
		case tt.rule != "" && (!errors.As(err, &se) || se.Rule != tt.rule):
			t.Errorf("Step(%s -> %s) = %v, want rule %q", tt.from, tt.to, err, tt.rule)
		}
	}
}

func parseAll(ss []string) []Version {
	var vs []Version
	for _, s := range ss {
		vs = append(vs, MustParse(s))
	}
	return vs
}

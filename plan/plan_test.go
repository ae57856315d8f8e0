package plan

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func comp(name, host, version string, attrs ...Attr) Object {
	return Object{Kind: "component", Name: name, Host: host, Version: version, Attrs: attrs}
}

func TestDiffActions(t *testing.T) {
	desired := []Object{
		comp("etcd", "cp-1", "3.7.3", Attr{Name: "config_hash", Value: "a"}),
		comp("kube-apiserver", "cp-1", "1.37.2", Attr{Name: "args", Value: "--v=2"}),
		comp("kubelet", "w-1", "1.37.2", Attr{Name: "config_hash", Value: "same"}),
		comp("kube-proxy", "w-1", "1.37.2", Attr{Name: "token", Value: "s3cret", Sensitive: true}),
		{Kind: "component", Name: "etcd", Host: "cp-2", Version: "3.7.3", Attrs: []Attr{{Name: "data_dir", Value: "/new"}}, Immutable: []string{"data_dir"}},
		comp("containerd", "w-1", "2.4.2", Attr{Name: "config_hash", Value: "c"}),
	}
	observed := []Object{
		comp("etcd", "cp-1", "3.6.16", Attr{Name: "config_hash", Value: "a"}),
		comp("kube-apiserver", "cp-1", "1.37.2", Attr{Name: "args", Value: "--v=1"}),
		{Kind: "component", Name: "kubelet", Host: "w-1", Version: "1.37.2", Attrs: []Attr{{Name: "config_hash", Value: "same"}}, Drift: []string{"/etc/clusterctl/kubelet/3/config.yaml"}},
		comp("kube-proxy", "w-1", "1.37.2", Attr{Name: "token", Value: "old", Sensitive: true}),
		comp("etcd", "cp-2", "3.7.3", Attr{Name: "data_dir", Value: "/old"}),
		comp("cni", "w-2", "1.9.1"),
	}
	got := map[string]Action{}
	for _, c := range Diff(desired, observed) {
		got[c.Address] = c.Action
		if strings.Contains(c.Address, "kube-proxy") {
			for _, a := range c.Attrs {
				if strings.Contains(a.Before+a.After, "s3cret") || strings.Contains(a.Before+a.After, "old") {
					t.Errorf("sensitive value leaked into the plan: %+v", a)
				}
			}
		}
	}
	want := map[string]Action{
		`component.etcd["cp-1"]`:           Upgrade,
		`component.kube-apiserver["cp-1"]`: Update,
		`component.kubelet["w-1"]`:         Update,
		`component.kube-proxy["w-1"]`:      Update,
		`component.etcd["cp-2"]`:           Replace,
		`component.containerd["w-1"]`:      Create,
		`component.cni["w-2"]`:             Delete,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("actions (-want +got):\n%s", diff)
	}
}

func TestDiffNoChanges(t *testing.T) {
	objs := []Object{comp("etcd", "cp-1", "3.7.3", Attr{Name: "config_hash", Value: "a"})}
	if cs := Diff(objs, objs); len(cs) != 0 {
		t.Fatalf("want no changes, got %+v", cs)
	}
}

func testOrder() Order {
	return Order{
		"etcd":                    {Rolling: true},
		"kube-apiserver":          {After: []string{"etcd"}, Rolling: true},
		"kube-controller-manager": {After: []string{"kube-apiserver"}, Rolling: true},
		"containerd":              {},
		"kubelet":                 {After: []string{"kube-apiserver", "kube-controller-manager"}, AfterOnHost: []string{"containerd"}, Rolling: true, BatchSize: 2},
	}
}

var testComponents = []string{"etcd", "kube-apiserver", "kube-controller-manager", "containerd", "kubelet"}

func change(name, host string, a Action) Change {
	return Change{Address: Address("component", name, host), Kind: "component", Name: name, Host: host, Action: a}
}

func TestGraphCreateIsParallelPerComponent(t *testing.T) {
	var cs []Change
	for _, h := range []string{"cp-1", "cp-2", "cp-3"} {
		cs = append(cs, change("etcd", h, Create), change("kube-apiserver", h, Create))
	}
	cs = append(cs, change("containerd", "w-1", Create), change("kubelet", "w-1", Create))
	steps, err := Graph(cs, testOrder(), testComponents, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, s := range steps {
		got[s.ID] = s.DependsOn
	}
	want := map[string][]string{
		"etcd:create":           nil,
		"kube-apiserver:create": {"etcd:create"},
		"containerd:create":     nil,
		"kubelet:create":        {"kube-apiserver:create", "containerd:create"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("steps (-want +got):\n%s", diff)
	}
	if len(steps[0].Hosts) != 3 {
		t.Fatalf("etcd members are created together, got hosts %v", steps[0].Hosts)
	}
}

func TestGraphUpgradeRollsInSkewOrder(t *testing.T) {
	var cs []Change
	for _, h := range []string{"cp-1", "cp-2", "cp-3"} {
		cs = append(cs, change("etcd", h, Upgrade), change("kube-apiserver", h, Upgrade), change("kube-controller-manager", h, Upgrade))
	}
	for _, h := range []string{"w-1", "w-2", "w-3"} {
		cs = append(cs, change("kubelet", h, Upgrade))
	}
	steps, err := Graph(cs, testOrder(), testComponents, false)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range steps {
		ids = append(ids, s.ID)
	}
	want := []string{
		"etcd:cp-1", "etcd:cp-2", "etcd:cp-3",
		"kube-apiserver:cp-1", "kube-apiserver:cp-2", "kube-apiserver:cp-3",
		"kube-controller-manager:cp-1", "kube-controller-manager:cp-2", "kube-controller-manager:cp-3",
		"kubelet:w-1,w-2", "kubelet:w-3",
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Fatalf("rollout (-want +got):\n%s", diff)
	}
	// The second etcd member waits for the first; the first apiserver waits for every etcd member.
	if diff := cmp.Diff([]string{"etcd:cp-1"}, steps[1].DependsOn); diff != "" {
		t.Errorf("etcd:cp-2 deps: %s", diff)
	}
	if diff := cmp.Diff([]string{"etcd:cp-1", "etcd:cp-2", "etcd:cp-3"}, steps[3].DependsOn); diff != "" {
		t.Errorf("kube-apiserver:cp-1 deps: %s", diff)
	}
}

func TestGraphCycle(t *testing.T) {
	order := Order{"a": {After: []string{"b"}}, "b": {After: []string{"a"}}}
	_, err := Graph([]Change{change("a", "h", Create), change("b", "h", Create)}, order, nil, false)
	if err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("want a cycle error, got %v", err)
	}
}

func TestFingerprintCompare(t *testing.T) {
	a := Fingerprint{Files: map[string]string{"cluster.hcl": "sha256:aaaa", "hosts.hcl": "sha256:bbbb"}, Variables: map[string]string{"kubernetes_version": "sha256:v1"},
		Binary: "sha256:0123456789abcdef", Artifacts: map[string]string{"kubelet 1.37.2 linux/amd64 kubelet": "sha256:k1"},
		Hosts: map[string]string{"cp-1": "x", "w-1": "y"}, StateLineage: "l", StateSerial: 3}
	if why := a.Compare(a); why != nil {
		t.Fatalf("same fingerprint differs: %v", why)
	}
	b := Fingerprint{Files: map[string]string{"cluster.hcl": "sha256:cccc", "extra.hcl": "sha256:dddd"}, Variables: map[string]string{"kubernetes_version": "sha256:v2"},
		Binary: "sha256:fedcba9876543210", Artifacts: map[string]string{"kubelet 1.37.2 linux/amd64 kubelet": "sha256:k2"},
		Hosts: map[string]string{"cp-1": "z", "w-2": "y"}, StateLineage: "l", StateSerial: 4}
	want := []string{
		"spec file cluster.hcl changed (sha256:aaaa, now sha256:cccc)",
		"spec file hosts.hcl is gone",
		"spec file extra.hcl was added",
		"variable kubernetes_version changed (sha256:v1, now sha256:v2)",
		"the clusterctl binary changed (sha256:0123456789ab, now sha256:fedcba987654)",
		"artifact kubelet 1.37.2 linux/amd64 kubelet changed (sha256:k1, now sha256:k2)",
		"the state changed (serial 3, now 4)",
		"host cp-1 changed (its facts or installed components)",
		"host w-1 is no longer in the spec",
		"host w-2 was added",
	}
	if diff := cmp.Diff(want, a.Compare(b)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func samplePlan(t *testing.T) *Plan {
	desired := []Object{
		comp("etcd", "cp-1", "3.7.3", Attr{Name: "config_hash", Value: "sha256:aa"}),
		comp("kube-apiserver", "cp-1", "1.37.2", Attr{Name: "args", Value: "--v=2"}),
		comp("kubelet", "w-1", "1.37.2", Attr{Name: "bootstrap_token", Value: "abc.def", Sensitive: true}),
		comp("containerd", "w-1", "2.4.2"),
	}
	observed := []Object{
		comp("etcd", "cp-1", "3.6.16", Attr{Name: "config_hash", Value: "sha256:aa"}),
		comp("kube-apiserver", "cp-1", "1.37.2", Attr{Name: "args", Value: "--v=1"}),
		comp("cni", "w-9", "1.9.1"),
	}
	changes := Diff(desired, observed)
	changes = append(changes, Change{Address: "cert.apiserver", Kind: "cert", Name: "apiserver", Action: Update, Reason: "expires in 12 days",
		Attrs: []AttrChange{{Name: "not_after", Action: Update, Before: "2026-12-07T00:00:00Z", After: "2027-11-25T00:00:00Z"}}})
	steps, err := Graph(changes, testOrder(), testComponents, false)
	if err != nil {
		t.Fatal(err)
	}
	return &Plan{
		FormatVersion: FormatVersion,
		Mode:          ModeApply,
		Cluster:       "demo",
		CreatedAt:     time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC),
		Fingerprint:   Fingerprint{Files: map[string]string{"cluster.hcl": "sha256:spec"}, Binary: "sha256:bin", Hosts: map[string]string{"cp-1": "sha256:h1"}, StateLineage: "lin", StateSerial: 7},
		Changes:       changes,
		Steps:         steps,
		Warnings:      []string{"an even number of etcd members (2) tolerates no more failures than one fewer"},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./plan -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Fatalf("%s differs (-want +got):\n%s", path, diff)
	}
}

func TestRenderGolden(t *testing.T) {
	p := samplePlan(t)
	var j, txt, color bytes.Buffer
	if err := WriteJSON(&j, p); err != nil {
		t.Fatal(err)
	}
	if err := WriteText(&txt, p, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteText(&color, p, TextOptions{Color: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.json", j.Bytes())
	golden(t, "plan.txt", txt.Bytes())
	if !strings.Contains(color.String(), "\x1b[") || strings.Contains(txt.String(), "\x1b[") {
		t.Fatal("colour must appear only when asked for")
	}
	if strings.Contains(j.String(), "abc.def") || strings.Contains(txt.String(), "abc.def") {
		t.Fatal("a sensitive value was rendered")
	}
	back, err := ReadJSON(&j)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, back); diff != "" {
		t.Fatalf("JSON round trip (-want +got):\n%s", diff)
	}
}

func TestRenderNoChanges(t *testing.T) {
	var b bytes.Buffer
	p := &Plan{FormatVersion: FormatVersion, Cluster: "demo"}
	if err := WriteText(&b, p, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "No changes.") {
		t.Fatalf("got %q", b.String())
	}
}

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
		comp("etcd", "cp-2", "3.7.3", Attr{Name: "data_dir", Value: "/new"}),
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
		`component.etcd["cp-2"]`:           Update, // no change is a replace (action.go)
		`component.containerd["w-1"]`:      Create,
		`component.cni["w-2"]`:             Delete,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("actions (-want +got):\n%s", diff)
	}
}

// A KubeletConfiguration with one field changed shows exactly that field,
// before and after, and config_hash; the reason names the file once.
func TestDiffFileField(t *testing.T) {
	desired := comp("kubelet", "w-1", "1.37.2",
		Attr{Name: "--config", Value: "kubelet-config.yaml"},
		Attr{Name: "kubelet-config.yaml:evictionHard.\"memory.available\"", Value: "200Mi"},
		Attr{Name: "kubelet-config.yaml:port", Value: "10250"},
		Attr{Name: "/etc/kubernetes/kubelet.conf:sha256", Value: "sha256:new", Sensitive: true},
		Attr{Name: "config_hash", Value: "sha256:b"})
	observed := comp("kubelet", "w-1", "1.37.2",
		Attr{Name: "--config", Value: "kubelet-config.yaml"},
		Attr{Name: "kubelet-config.yaml:evictionHard.\"memory.available\"", Value: "100Mi"},
		Attr{Name: "kubelet-config.yaml:port", Value: "10250"},
		Attr{Name: "/etc/kubernetes/kubelet.conf:sha256", Value: "sha256:new", Sensitive: true},
		Attr{Name: "config_hash", Value: "sha256:a"})
	cs := Diff([]Object{desired}, []Object{observed})
	if len(cs) != 1 || cs[0].Action != Update {
		t.Fatalf("want one update, got %+v", cs)
	}
	want := []AttrChange{
		{Name: "kubelet-config.yaml:evictionHard.\"memory.available\"", Action: Update, Before: "100Mi", After: "200Mi"},
		{Name: "config_hash", Action: Update, Before: "sha256:a", After: "sha256:b"},
	}
	if d := cmp.Diff(want, cs[0].Attrs); d != "" {
		t.Fatalf("attrs (-want +got):\n%s", d)
	}
	if cs[0].Reason != "kubelet-config.yaml, config_hash changed" {
		t.Errorf("reason %q", cs[0].Reason)
	}
}

// An observed object recorded before file attributes existed is Partial:
// the desired file attributes it lacks are unknown, not created. Unchanged
// files give no change; a changed one shows as config_hash, as before.
func TestDiffPartialObserved(t *testing.T) {
	desired := comp("kube-proxy", "w-1", "1.37.2",
		Attr{Name: "--config", Value: "kube-proxy-config.yaml"},
		Attr{Name: "kube-proxy-config.yaml:mode", Value: "iptables"},
		Attr{Name: "/etc/kubernetes/proxy.conf:sha256", Value: "sha256:k", Sensitive: true},
		Attr{Name: "config_hash", Value: "sha256:a"})
	old := comp("kube-proxy", "w-1", "1.37.2",
		Attr{Name: "--config", Value: "kube-proxy-config.yaml"},
		Attr{Name: "config_hash", Value: "sha256:a"})
	old.Partial = true
	if cs := Diff([]Object{desired}, []Object{old}); len(cs) != 0 {
		t.Fatalf("an old record gave changes: %+v", cs)
	}
	old.Attrs[1].Value = "sha256:0"
	cs := Diff([]Object{desired}, []Object{old})
	want := []AttrChange{{Name: "config_hash", Action: Update, Before: "sha256:0", After: "sha256:a"}}
	if len(cs) != 1 || cs[0].Action != Update {
		t.Fatalf("want one update, got %+v", cs)
	}
	if d := cmp.Diff(want, cs[0].Attrs); d != "" {
		t.Fatalf("attrs (-want +got):\n%s", d)
	}
	// Not partial: the same lack is a change.
	old.Partial = false
	old.Attrs[1].Value = "sha256:a"
	if cs := Diff([]Object{desired}, []Object{old}); len(cs) != 1 {
		t.Fatalf("a complete record lacking file attributes must differ, got %+v", cs)
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
		comp("containerd", "w-1", "2.4.2",
			Attr{Name: "--config", Value: "config.toml"},
			Attr{Name: "config.toml:grpc.address", Value: "/run/containerd/containerd.sock"},
			Attr{Name: "config.toml:root", Value: "/var/lib/containerd"},
			Attr{Name: "config.toml:version", Value: "3"},
			Attr{Name: "config_hash", Value: "sha256:cc"}),
		comp("kubelet", "w-2", "1.37.2",
			Attr{Name: "kubelet-config.yaml:evictionHard.\"memory.available\"", Value: "200Mi"},
			Attr{Name: "kubelet-config.yaml:port", Value: "10250"},
			Attr{Name: "/etc/kubernetes/kubelet.conf:sha256", Value: "sha256:k2", Sensitive: true},
			Attr{Name: "config_hash", Value: "sha256:h2"}),
	}
	observed := []Object{
		comp("etcd", "cp-1", "3.6.16", Attr{Name: "config_hash", Value: "sha256:aa"}),
		comp("kube-apiserver", "cp-1", "1.37.2", Attr{Name: "args", Value: "--v=1"}),
		comp("cni", "w-9", "1.9.1",
			Attr{Name: "cni.conflist:plugins[0].type", Value: "bridge"},
			Attr{Name: "cni.conflist:plugins[1].type", Value: "portmap"}),
		comp("kubelet", "w-2", "1.37.2",
			Attr{Name: "kubelet-config.yaml:evictionHard.\"memory.available\"", Value: "100Mi"},
			Attr{Name: "kubelet-config.yaml:port", Value: "10250"},
			Attr{Name: "/etc/kubernetes/kubelet.conf:sha256", Value: "sha256:k1", Sensitive: true},
			Attr{Name: "config_hash", Value: "sha256:h1"}),
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
	for _, secret := range []string{"abc.def", "sha256:k1\"", "sha256:k2\""} {
		if strings.Contains(j.String(), secret) || strings.Contains(txt.String(), secret) {
			t.Fatalf("a sensitive value (%s) was rendered", secret)
		}
	}
	for _, line := range []string{
		`~ kubelet-config.yaml:evictionHard."memory.available" = "100Mi" -> "200Mi"`,
		`~ /etc/kubernetes/kubelet.conf:sha256                 = (sensitive) -> (sensitive)`,
		`+ config.toml = (3 fields)`,
		`- cni.conflist = (2 fields)`,
	} {
		if !strings.Contains(txt.String(), line) {
			t.Errorf("the text lacks %q", line)
		}
	}
	if strings.Contains(txt.String(), "kubelet-config.yaml:port") {
		t.Error("an unchanged field is listed")
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

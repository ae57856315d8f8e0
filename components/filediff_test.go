package components

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/plan"
)

func attrMap(attrs []plan.Attr) map[string]plan.Attr {
	m := map[string]plan.Attr{}
	for _, a := range attrs {
		m[a.Name] = a
	}
	return m
}

// installedAs is what installed.json holds after d was installed, written
// and read back as the installer and Observe do.
func installedAs(t *testing.T, d Desired) InstalledComponent {
	t.Helper()
	hash, err := d.ConfigHash()
	if err != nil {
		t.Fatal(err)
	}
	inst := Installed{FormatVersion: InstalledFormat, Host: d.Host, Components: map[string]InstalledComponent{
		d.Component: {Generation: Generation{Number: 1, Version: d.Version, ConfigHash: hash, Args: d.Unit.Args,
			FileAttrs: d.RecordedAttrs(), UpdatedAt: time.Now().UTC()}},
	}}
	b, err := inst.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseInstalled(d.Host, b)
	if err != nil {
		t.Fatal(err)
	}
	return back.Components[d.Component]
}

func diffOne(t *testing.T, d Desired, ic InstalledComponent) []plan.Change {
	t.Helper()
	o, err := d.Object()
	if err != nil {
		t.Fatal(err)
	}
	return plan.Diff([]plan.Object{o}, []plan.Object{ic.Object(d.Host, d.Component, nil)})
}

// Every structured generation file of the node components is flattened
// into fields; certificates are digests; keys and kubeconfigs are
// sensitive digests.
func TestFileAttrsOfNodeComponents(t *testing.T) {
	c := loadSpec(t, testSpec)
	in := testInput(t, c, systemdFacts)
	want := map[string]map[string]string{
		bundle.Kubelet: {
			`kubelet-config.yaml:kind`:                             "KubeletConfiguration",
			`kubelet-config.yaml:authentication.anonymous.enabled`: "false",
			`kubelet-config.yaml:clusterDNS[0]`:                    "10.96.0.10",
			`kubelet-config.yaml:registerWithTaints[0].key`:        "dedicated",
			`kubelet-config.yaml:cgroupDriver`:                     "systemd",
			`node-meta.json:labels.disk`:                           "ssd",
		},
		bundle.Containerd: {
			`config.toml:version`: "3",
			`config.toml:plugins."io.containerd.cri.v1.images".snapshotter`:                                     "overlayfs",
			`config.toml:plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options.SystemdCgroup`: "true",
			`config.toml:plugins."io.containerd.grpc.v1.cri".stream_server_port`:                                "0",
		},
		bundle.CNI: {
			`cni.conflist:cniVersion`:                           "1.0.0",
			`cni.conflist:plugins[0].type`:                      "bridge",
			`cni.conflist:plugins[0].isGateway`:                 "true",
			`cni.conflist:plugins[0].ipam.routes[0].dst`:        "0.0.0.0/0",
			`cni.conflist:plugins[1].capabilities.portMappings`: "true",
		},
		bundle.KubeProxy: {
			`kube-proxy-config.yaml:kind`: "KubeProxyConfiguration",
		},
	}
	for comp, fields := range want {
		d := render(t, in, comp, "worker-1")
		got := attrMap(d.fileAttrs())
		for name, value := range fields {
			a, ok := got[name]
			if !ok {
				var names []string
				for _, a := range d.fileAttrs() {
					names = append(names, a.Name)
				}
				t.Errorf("%s: no attribute %s; have:\n%s", comp, name, strings.Join(names, "\n"))
				continue
			}
			if a.Value != value || a.Sensitive {
				t.Errorf("%s: %s = %q (sensitive %v), want %q", comp, name, a.Value, a.Sensitive, value)
			}
		}
		for _, f := range d.Shared {
			a, ok := got[f.Path+":sha256"]
			if !ok || a.Sensitive != f.Sensitive || a.Value != "sha256:"+f.SHA256() {
				t.Errorf("%s: shared file %s: attribute %+v", comp, f.Path, a)
			}
		}
	}
	// The CNI network list on the node has its pod range.
	cni := attrMap(render(t, in, bundle.CNI, "worker-1").fileAttrs())
	if a := cni["cni.conflist:plugins[0].ipam.ranges[0][0].subnet"]; !strings.HasPrefix(a.Value, "10.244.") {
		t.Errorf("subnet %+v", a)
	}
	if _, ok := cni["network.json:sha256"]; ok {
		t.Error("network.json is JSON: it has fields, not a digest")
	}
}

// A KubeletConfiguration change of one field (the cluster DNS address)
// shows exactly that field, before and after, besides config_hash.
func TestPlanShowsOneKubeletField(t *testing.T) {
	c := loadSpec(t, testSpec)
	before := render(t, testInput(t, c, systemdFacts), bundle.Kubelet, "worker-1")
	ic := installedAs(t, before)
	if cs := diffOne(t, before, ic); len(cs) != 0 {
		t.Fatalf("what was installed differs from itself: %+v", cs)
	}

	c2 := loadSpec(t, strings.Replace(testSpec, `service_cidr       = "10.96.0.0/12"`, "service_cidr       = \"10.96.0.0/12\"\n  cluster_dns        = \"10.96.0.53\"", 1))
	after := render(t, testInput(t, c2, systemdFacts), bundle.Kubelet, "worker-1")
	cs := diffOne(t, after, ic)
	if len(cs) != 1 || cs[0].Action != plan.Update {
		t.Fatalf("want one update, got %+v", cs)
	}
	var got []plan.AttrChange
	for _, a := range cs[0].Attrs {
		if a.Name != "config_hash" {
			got = append(got, a)
		}
	}
	want := []plan.AttrChange{{Name: "kubelet-config.yaml:clusterDNS[0]", Action: plan.Update, Before: "10.96.0.10", After: "10.96.0.53"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("changed attributes (-want +got):\n%s", d)
	}
	p := &plan.Plan{FormatVersion: plan.FormatVersion, Mode: plan.ModeApply, Cluster: "t", Changes: cs}
	var txt bytes.Buffer
	if err := plan.WriteText(&txt, p, plan.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(txt.String(), `~ kubelet-config.yaml:clusterDNS[0] = "10.96.0.10" -> "10.96.0.53"`) {
		t.Errorf("plan text:\n%s", txt.String())
	}
}

// A changed kubeconfig shows as a sensitive digest: "(sensitive)", never
// the digest or the content.
func TestPlanShowsSensitiveFile(t *testing.T) {
	c := loadSpec(t, testSpec)
	d := render(t, testInput(t, c, systemdFacts), bundle.KubeProxy, "worker-1")
	ic := installedAs(t, d)
	for i, f := range d.Shared {
		if f.Sensitive {
			d.Shared[i].Data = append([]byte("rotated "), f.Data...)
		}
	}
	cs := diffOne(t, d, ic)
	if len(cs) != 1 {
		t.Fatalf("want one change, got %+v", cs)
	}
	var sensitive int
	for _, a := range cs[0].Attrs {
		if strings.HasSuffix(a.Name, ":sha256") {
			sensitive++
			if !a.Sensitive || a.Before != "(sensitive)" || a.After != "(sensitive)" {
				t.Errorf("sensitive file attribute shown: %+v", a)
			}
		}
	}
	if sensitive == 0 {
		t.Fatalf("no sensitive file attribute changed: %+v", cs[0].Attrs)
	}
	// A component leaving the spec lists its observed attributes: still
	// sensitive.
	for _, ch := range plan.Diff(nil, []plan.Object{ic.Object(d.Host, d.Component, nil)}) {
		for _, a := range ch.Attrs {
			if strings.Contains(a.Before, "sha256:") && strings.HasPrefix(a.Name, "/") && strings.Contains(a.Name, ".conf") {
				t.Errorf("a deleted kubeconfig's digest is shown: %+v", a)
			}
		}
	}
}

// An installed.json written before file attributes existed (no
// "file_attrs") gives no change when nothing changed, and only config_hash
// when something did: not every field as created.
func TestOldInstalledJSONHasNoSpuriousChanges(t *testing.T) {
	c := loadSpec(t, testSpec)
	for _, comp := range []string{bundle.Kubelet, bundle.Containerd, bundle.CNI, bundle.KubeProxy} {
		d := render(t, testInput(t, c, systemdFacts), comp, "worker-1")
		ic := installedAs(t, d)
		ic.FileAttrs = nil
		b, err := (Installed{FormatVersion: InstalledFormat, Host: d.Host, Components: map[string]InstalledComponent{comp: ic}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("file_attrs")) {
			t.Fatalf("an old record has no file_attrs:\n%s", b)
		}
		old, err := ParseInstalled(d.Host, b)
		if err != nil {
			t.Fatal(err)
		}
		if !old.Components[comp].Object(d.Host, comp, nil).Partial {
			t.Errorf("%s: an old record must be partial", comp)
		}
		if cs := diffOne(t, d, old.Components[comp]); len(cs) != 0 {
			t.Errorf("%s: an old installed.json gives changes: %+v", comp, cs)
		}
		// Something changed: config_hash says so, as before.
		d.Config[0].Data = append(d.Config[0].Data, '\n')
		cs := diffOne(t, d, old.Components[comp])
		if len(cs) != 1 || len(cs[0].Attrs) != 1 || cs[0].Attrs[0].Name != "config_hash" {
			t.Errorf("%s: want a config_hash update, got %+v", comp, cs)
		}
		// Attributes recorded under other rules are not compared either.
		ic.FileAttrs = &FileAttrs{Version: FileAttrsVersion + 1, Attrs: []plan.Attr{{Name: "x.yaml:a", Value: "b"}}}
		if o := ic.Object(d.Host, comp, nil); !o.Partial || attrMap(o.Attrs)["x.yaml:a"].Name != "" {
			t.Errorf("%s: attributes of another version are used: %+v", comp, o)
		}
	}
}

func TestFileAttrList(t *testing.T) {
	for _, tt := range []struct {
		name string
		file File
		want []plan.Attr
	}{
		{"yaml", File{Path: "a.yaml", Data: []byte("# c\nb:\n  c.d: 1\n  e: [x, {f: null}]\n  g: {}\n  h: []\n")}, []plan.Attr{
			{Name: `a.yaml:b."c.d"`, Value: "1"}, {Name: "a.yaml:b.e[0]", Value: "x"}, {Name: "a.yaml:b.e[1].f", Value: "null"},
			{Name: "a.yaml:b.g", Value: "{}"}, {Name: "a.yaml:b.h", Value: "[]"},
		}},
		{"json", File{Path: "n.json", Data: []byte(`{"z": 1.50, "a": [true, "s", null], "": {}}`)}, []plan.Attr{
			{Name: "n.json:z", Value: "1.50"}, {Name: "n.json:a[0]", Value: "true"}, {Name: "n.json:a[1]", Value: "s"},
			{Name: "n.json:a[2]", Value: "null"}, {Name: `n.json:""`, Value: "{}"},
		}},
		{"toml", File{Path: "c.toml", Data: []byte("version = 3\n[p.'x.y']\n  k = 'v'\n  l = [\"a\"]\n")}, []plan.Attr{
			{Name: `c.toml:p."x.y".k`, Value: "v"}, {Name: `c.toml:p."x.y".l[0]`, Value: "a"}, {Name: "c.toml:version", Value: "3"},
		}},
		{"unstructured", File{Path: "policy.rego", Data: []byte("x")}, []plan.Attr{
			{Name: "policy.rego:sha256", Value: "sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
		}},
		{"broken yaml", File{Path: "b.yaml", Data: []byte("a: [")}, []plan.Attr{
			{Name: "b.yaml:sha256", Value: "sha256:" + sha256Hex([]byte("a: ["))},
		}},
		{"two documents", File{Path: "d.yaml", Data: []byte("a: 1\n---\na: 2\n")}, []plan.Attr{
			{Name: "d.yaml:sha256", Value: "sha256:" + sha256Hex([]byte("a: 1\n---\na: 2\n"))},
		}},
		{"sensitive", File{Path: "/etc/k.conf", Data: []byte("a: 1\n"), Sensitive: true}, []plan.Attr{
			{Name: "/etc/k.conf:sha256", Value: "sha256:" + sha256Hex([]byte("a: 1\n")), Sensitive: true},
		}},
	} {
		if d := cmp.Diff(tt.want, FileAttrList(tt.file)); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
}

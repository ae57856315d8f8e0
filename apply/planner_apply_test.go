package apply

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/bundle/bundletest"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/provision"
)

// emptyWorld is three reachable lab-like hosts with nothing installed.
func emptyWorld(s *Session) World {
	w := World{Installed: map[string]components.Installed{}, Platforms: map[string]bundle.Platform{},
		Lab: map[string]components.LabHost{}, Facts: map[string]provision.Facts{}}
	for _, h := range s.Cluster.Hosts() {
		w.Platforms[h.Name] = bundle.HostPlatform()
		w.Facts[h.Name] = provision.Facts{Machine: "x86_64", Arch: "amd64", CgroupVersion: 2, SystemdPID1: true, CapEff: 0x1ffffffffff,
			Tools: map[string]string{"iptables": "/usr/sbin/iptables", "mount": "/usr/bin/mount", "umount": "/usr/bin/umount"}}
	}
	return w
}

// installedAsPlanned is the world after an apply of c: every desired
// component recorded in installed.json as generation 1.
func installedAsPlanned(t *testing.T, s *Session, c *Computed) World {
	t.Helper()
	w := emptyWorld(s)
	for _, d := range c.Desired {
		hash, err := d.ConfigHash()
		if err != nil {
			t.Fatal(err)
		}
		inst, ok := w.Installed[d.Host]
		if !ok {
			inst = components.Installed{FormatVersion: components.InstalledFormat, Host: d.Host, Components: map[string]components.InstalledComponent{}}
		}
		g := components.Generation{Number: 1, Version: d.Version, ConfigHash: hash, UpdatedAt: time.Now()}
		if d.Component != components.AgentComponent {
			g.Args, g.FileAttrs = d.Unit.Args, d.RecordedAttrs()
		}
		inst.Components[d.Component] = components.InstalledComponent{Generation: g}
		w.Installed[d.Host] = inst
	}
	// Through installed.json, as Observe reads it.
	for host, inst := range w.Installed {
		b, err := inst.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := components.ParseInstalled(host, b)
		if err != nil {
			t.Fatal(err)
		}
		w.Installed[host] = back
		for _, name := range back.Names() {
			w.Objects = append(w.Objects, back.Components[name].Object(host, name, nil))
		}
	}
	return w
}

func componentChanges(changes []plan.Change) []string {
	var out []string
	for _, ch := range changes {
		if ch.Kind == components.Kind {
			out = append(out, ch.Action.String()+" "+ch.Host+" "+ch.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Apply mode from a world: an empty cluster gets every component (the
// agent first on each host) and its certificates; the world that apply
// leaves behind plans no change; drift and a changed record plan an update
// of exactly that component.
func TestPlanApplyFromAWorld(t *testing.T) {
	ctx := context.Background()
	s := testSession(t)
	s.Cache = bundletest.Cache(t)
	s.agentBin = components.AgentBinaryFile{Local: "/bin/true", SHA256: strings.Repeat("ab", 32), Size: 1}

	c := &Computed{World: emptyWorld(s), Desired: map[string]components.Desired{}}
	changes, err := s.planApply(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	got := componentChanges(changes)
	for _, want := range []string{"create cp-1 agent", "create cp-1 etcd", "create cp-1 kube-apiserver", "create cp-1 kube-scheduler",
		"create worker-2 agent", "create worker-2 containerd", "create worker-2 kubelet", "create worker-2 kube-proxy", "create worker-2 cni", "create cp-1 coredns"} {
		if !slices.Contains(got, want) {
			t.Errorf("fresh plan lacks %q: %v", want, got)
		}
	}
	for _, g := range got {
		if !strings.HasPrefix(g, "create ") {
			t.Errorf("fresh plan: %s", g)
		}
		if strings.Contains(g, "worker") && (strings.Contains(g, "etcd") || strings.Contains(g, "apiserver") || strings.Contains(g, "coredns")) {
			t.Errorf("a worker gets a control-plane component: %s", g)
		}
	}
	var certs int
	for _, ch := range changes {
		if ch.Kind == "cert" && ch.Action == plan.Create {
			certs++
		}
	}
	if certs == 0 {
		t.Error("a fresh plan creates no certificates")
	}
	if err := s.SavePKI(c); err != nil {
		t.Fatal(err)
	}

	after := installedAsPlanned(t, s, c)
	c2 := &Computed{World: after, Desired: map[string]components.Desired{}}
	changes, err = s.planApply(ctx, c2)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 0 {
		t.Fatalf("the world apply leaves behind plans changes: %v", componentChanges(changes))
	}

	// A file edited by hand on worker-1 (drift), and a kube-proxy on
	// worker-2 installed with other arguments.
	for i, o := range after.Objects {
		switch {
		case o.Host == "worker-1" && o.Name == "kubelet":
			after.Objects[i].Drift = []string{"/etc/kubernetes/kubelet.conf was edited (now sha256:0123456789ab)"}
		case o.Host == "worker-2" && o.Name == "kube-proxy":
			for j, a := range o.Attrs {
				if a.Name == "config_hash" {
					after.Objects[i].Attrs[j].Value = "sha256:old"
				}
			}
		}
	}
	changes, err = s.planApply(ctx, &Computed{World: after, Desired: map[string]components.Desired{}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := componentChanges(changes), []string{"update worker-1 kubelet", "update worker-2 kube-proxy"}; !slices.Equal(got, want) {
		t.Errorf("after drift: %v, want %v", got, want)
	}
}

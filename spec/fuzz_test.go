package spec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// fuzzSeeds returns every example and corpus case as one file (the files
// of a folder concatenated: that is how they merge) and its -var option.
func fuzzSeeds(t testing.TB) (srcs [][]byte, vars []string) {
	dirs, _ := filepath.Glob("../examples/*")
	cases, _ := filepath.Glob("testdata/*/*")
	for _, d := range append(dirs, cases...) {
		names, _ := filepath.Glob(filepath.Join(d, "*.hcl"))
		slices.Sort(names)
		var src []byte
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			src = append(append(src, b...), '\n')
		}
		varArg := ""
		if args, err := os.ReadFile(filepath.Join(d, "args")); err == nil {
			if lines := strings.Split(strings.TrimSpace(string(args)), "\n"); len(lines) == 2 && lines[0] == "-var" {
				varArg = lines[1]
			}
		}
		srcs, vars = append(srcs, src), append(vars, varArg)
	}
	if len(srcs) < 30 {
		t.Fatalf("only %d fuzz seeds; the examples or the corpus are missing", len(srcs))
	}
	return srcs, vars
}

// FuzzParse feeds arbitrary text (and an arbitrary -var option) through the
// parser and validator. Besides not panicking, the result must be
// consistent: a Cluster exactly when there are no errors, diagnostics that
// point into the input, and a Cluster that satisfies the rules validation
// promises.
func FuzzParse(f *testing.F) {
	srcs, vars := fuzzSeeds(f)
	for i := range srcs {
		f.Add(srcs[i], vars[i])
	}
	f.Fuzz(func(t *testing.T, src []byte, varArg string) {
		in := VarInputs{Env: []string{"HOME=/home/fuzz", EnvPrefix + "address=10.1.2.3"}}
		if varArg != "" {
			in.Args = []VarArg{{Value: varArg}}
		}
		c, diags := Parse(map[string][]byte{"fuzz.hcl": src}, in)
		if diags.HasErrors() != (c == nil) {
			t.Fatalf("errors %v but cluster %v", diags.HasErrors(), c != nil)
		}
		for _, d := range diags {
			if d.Summary == "" {
				t.Errorf("diagnostic without summary: %+v", d)
			}
			if r := d.Subject; r != nil {
				checkRange(t, r, src)
			}
		}
		if c != nil {
			checkCluster(t, c)
		}
	})
}

func checkRange(t *testing.T, r *hcl.Range, src []byte) {
	t.Helper()
	if r.Filename != "fuzz.hcl" {
		t.Errorf("range in unknown file %q", r.Filename)
		return
	}
	if r.Start.Byte < 0 || r.End.Byte < r.Start.Byte || r.End.Byte > len(src) || r.Start.Line < 1 || r.End.Line < r.Start.Line {
		t.Errorf("range %s outside the input (%d bytes)", r, len(src))
	}
}

// checkCluster asserts what a valid Cluster guarantees its consumers.
func checkCluster(t *testing.T, c *Cluster) {
	t.Helper()
	if s := c.SSH(); s.Bastion.Address != "" && (s.Bastion.User == "" || s.Bastion.Port == 0) {
		t.Errorf("incomplete bastion %+v", s.Bastion)
	}
	if c.Name() == "" || c.KubernetesVersion() == "" || !c.PodCIDR().IsValid() || !c.ServiceCIDR().IsValid() || !c.ServiceCIDR().Contains(c.ClusterDNS()) {
		t.Errorf("incomplete cluster: %q %q %s %s %s", c.Name(), c.KubernetesVersion(), c.PodCIDR(), c.ServiceCIDR(), c.ClusterDNS())
	}
	if c.PodCIDR().Overlaps(c.ServiceCIDR()) {
		t.Errorf("pod_cidr %s overlaps service_cidr %s", c.PodCIDR(), c.ServiceCIDR())
	}
	if len(c.ControlPlaneHosts()) == 0 || len(c.EtcdHosts()) == 0 {
		t.Errorf("no control plane or etcd host")
	}
	names := map[string]bool{}
	for _, h := range c.Hosts() {
		if names[h.Name] || h.Address == "" || len(h.Roles) == 0 || h.Port < 1 || h.Port > 65535 || h.SSH.ConnectTimeout <= 0 {
			t.Errorf("bad host %+v", h)
		}
		names[h.Name] = true
		if a := h.NodeAddress(); a.IsValid() && (c.PodCIDR().Contains(a) || c.ServiceCIDR().Contains(a)) {
			t.Errorf("host %s address %s inside a cluster range", h.Name, a)
		}
	}
	for _, comp := range c.Components() {
		if comp.Version == "" {
			t.Errorf("component %s has no version", comp.Name)
		}
		for _, h := range comp.Hosts {
			if !names[h] {
				t.Errorf("component %s runs on unknown host %q", comp.Name, h)
			}
		}
	}
}

package spec

import (
	"math/rand/v2"
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

// folderSeed is a spec folder for FuzzParseFolder: its first spec file,
// the others concatenated (a second file, so that merging is exercised),
// its variable files concatenated (given as -var-file) and a -var option.
type folderSeed struct {
	first, rest, vars []byte
	varArg            string
}

func folderSeeds(t testing.TB) []folderSeed {
	dirs, _ := filepath.Glob("../examples/*")
	cases, _ := filepath.Glob("testdata/*/*")
	var out []folderSeed
	for _, d := range append(dirs, cases...) {
		names, _ := filepath.Glob(filepath.Join(d, "*.hcl"))
		varNames, _ := filepath.Glob(filepath.Join(d, "*.hclvars"))
		slices.Sort(names)
		var s folderSeed
		for i, n := range append(names, varNames...) {
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case i == 0:
				s.first = b
			case i < len(names):
				s.rest = append(append(s.rest, b...), '\n')
			default:
				s.vars = append(append(s.vars, b...), '\n')
			}
		}
		if args, err := os.ReadFile(filepath.Join(d, "args")); err == nil {
			if lines := strings.Split(strings.TrimSpace(string(args)), "\n"); len(lines) == 2 && lines[0] == "-var" {
				s.varArg = lines[1]
			}
		}
		out = append(out, s)
	}
	if len(out) < 30 {
		t.Fatalf("only %d folder seeds", len(out))
	}
	return out
}

// The files of a fuzzed folder.
const (
	fuzzFirst = "a.hcl"
	fuzzRest  = "b.hcl"
	fuzzVars  = "given.hclvars"
)

// FuzzParseFolder is FuzzParse over whole spec folders: two spec files, a
// -var-file and a -var option. Beyond FuzzParse's checks, no input may
// crash the parser (files nested too deep are refused before it), and no
// diagnostic may quote a long value in full.
func FuzzParseFolder(f *testing.F) {
	for _, s := range folderSeeds(f) {
		f.Add(s.first, s.rest, s.vars, s.varArg)
	}
	f.Fuzz(func(t *testing.T, first, rest, vars []byte, varArg string) {
		checkFolder(t, folderSeed{first, rest, vars, varArg})
	})
}

func checkFolder(t *testing.T, s folderSeed) {
	t.Helper()
	files := map[string][]byte{fuzzFirst: s.first, fuzzRest: s.rest, fuzzVars: s.vars}
	in := VarInputs{Env: []string{"HOME=/home/fuzz", EnvPrefix + "address=10.1.2.3"}, Args: []VarArg{{File: true, Value: fuzzVars}}}
	if s.varArg != "" {
		in.Args = append(in.Args, VarArg{Value: s.varArg})
	}
	c, diags := Parse(files, in)
	if diags.HasErrors() != (c == nil) {
		t.Errorf("errors %v but cluster %v", diags.HasErrors(), c != nil)
		return
	}
	for _, d := range diags {
		if d.Summary == "" {
			t.Errorf("diagnostic without summary: %+v", d)
		}
		if clipQuoted(d.Detail) != d.Detail || clipQuoted(d.Summary) != d.Summary {
			t.Errorf("diagnostic quotes a long value in full: %.300s", d.Detail)
		}
		r := d.Subject
		if r == nil || strings.HasPrefix(r.Filename, "<value for var.") {
			continue
		}
		src, ok := files[r.Filename]
		if !ok {
			t.Errorf("range in unknown file %q", r.Filename)
			continue
		}
		if r.Start.Byte < 0 || r.End.Byte < r.Start.Byte || r.End.Byte > len(src) || r.Start.Line < 1 || r.End.Line < r.Start.Line {
			t.Errorf("range %s outside %s (%d bytes)", r, r.Filename, len(src))
		}
	}
	if c != nil {
		checkCluster(t, c)
	}
}

// fuzzTokens are what mutations insert: syntax that changes nesting and
// strings, and fragments of the spec language.
var fuzzTokens = []string{
	"{", "}", "[", "]", "(", ")", "\"", "${", "}", "%{ if true }", "%{ endif }", "$${", "<<EOT\n", "\nEOT\n", "<<-X\n", "\n  X\n",
	"#", "//", "/*", "*/", "\n", "=", ",", ":", "?", "!", "-", "+", "==", "\\", "var.", "local.", "null", "true", "0",
	`"1.37.2"`, `"1.37.2+build"`, `"10.0.0.1"`, `"fd00::1"`, `"10.244.0.0/16"`, "host \"h\" {\n", `taints = ["a:NoSchedule", "a=b:NoSchedule"]`,
	`labels = { a = "b" }`, "variable \"v\" {\n", "locals {\n", "cluster \"c\" {\n", `roles = ["worker"]`, strings.Repeat("x", 100),
}

// mutate changes src in one of a few ways, borrowing from other.
func mutate(rng *rand.Rand, src, other []byte) []byte {
	out := slices.Clone(src)
	pos := func(b []byte) int { return rng.IntN(len(b) + 1) }
	switch rng.IntN(7) {
	case 0: // insert a token
		i := pos(out)
		out = slices.Insert(out, i, []byte(fuzzTokens[rng.IntN(len(fuzzTokens))])...)
	case 1: // replace a byte
		if len(out) > 0 {
			out[rng.IntN(len(out))] = fuzzTokens[rng.IntN(len(fuzzTokens))][0]
		}
	case 2: // delete a span
		i := pos(out)
		out = slices.Delete(out, i, min(len(out), i+rng.IntN(40)))
	case 3: // duplicate a span
		i := pos(out)
		j := min(len(out), i+rng.IntN(200))
		out = slices.Insert(out, j, out[i:j]...)
	case 4: // splice in a span of another seed
		i, j := pos(other), pos(other)
		out = slices.Insert(out, pos(out), other[min(i, j):max(i, j)]...)
	case 5: // nest deep, near the limits
		n := MaxNesting - 5 + rng.IntN(10)
		open := []string{"[", "(", "{a=", "${\""}[rng.IntN(4)]
		out = slices.Insert(out, pos(out), []byte(strings.Repeat(open, n))...)
	case 6: // a long value, to check that messages clip it
		out = slices.Insert(out, pos(out), []byte("\""+strings.Repeat("v", 70+rng.IntN(200))+"\"")...)
	}
	return out
}

// TestFuzzParseFolderBounded runs the fuzz target over a fixed number of
// inputs mutated from the seeds with a fixed random source: the same
// inputs on every run, in bounded time, with no fuzzing engine (`go test
// -fuzz=FuzzParseFolder ./spec/` explores further). Each input gets
// 1 to 4 mutations in one of its parts.
func TestFuzzParseFolderBounded(t *testing.T) {
	iterations := 1500
	if testing.Short() {
		iterations = 200
	}
	seeds := folderSeeds(t)
	rng := rand.New(rand.NewPCG(14, 9))
	for i := range iterations {
		s := seeds[rng.IntN(len(seeds))]
		other := seeds[rng.IntN(len(seeds))].first
		for range 1 + rng.IntN(4) {
			switch rng.IntN(4) {
			case 0, 1:
				s.first = mutate(rng, s.first, other)
			case 2:
				s.rest = mutate(rng, s.rest, other)
			case 3:
				s.vars = mutate(rng, s.vars, other)
			}
		}
		if checkFolder(t, s); t.Failed() {
			t.Fatalf("input %d failed; a.hcl:\n%s\nb.hcl:\n%s\ngiven.hclvars:\n%s\n-var %q", i, s.first, s.rest, s.vars, s.varArg)
		}
	}
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

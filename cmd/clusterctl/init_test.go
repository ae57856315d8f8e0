package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestInitWritesAValidStarter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Prod_Cluster")
	out, errOut, code := runCLI(t, "-chdir="+dir, "init")
	if code != 0 || !strings.Contains(out, "Wrote") || errOut != "" {
		t.Fatalf("init: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	src := readFile(t, filepath.Join(dir, "cluster.hcl"))
	if !strings.Contains(src, `cluster "prod-cluster"`) || !strings.Contains(src, `host "node-1"`) {
		t.Errorf("starter:\n%s", src)
	}
	if out, errOut, code := runCLI(t, "-chdir="+dir, "validate"); code != 0 || errOut != "" {
		t.Errorf("validate starter: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, code := runCLI(t, "-chdir="+dir, "fmt", "-check"); code != 0 {
		t.Errorf("fmt -check starter: exit %d, %s", code, out)
	}

	if err := os.WriteFile(filepath.Join(dir, "cluster.hcl"), []byte("# mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "-chdir="+dir, "init"); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Errorf("second init: exit %d, %q", code, errOut)
	}
	if readFile(t, filepath.Join(dir, "cluster.hcl")) != "# mine\n" {
		t.Error("init overwrote cluster.hcl without -force")
	}
	if _, _, code := runCLI(t, "-chdir="+dir, "init", "-force", "-name", "other", "-kubernetes-version", "1.36.3"); code != 0 {
		t.Errorf("init -force: exit %d", code)
	}
	if src := readFile(t, filepath.Join(dir, "cluster.hcl")); !strings.Contains(src, `cluster "other"`) || !strings.Contains(src, `kubernetes_version = "1.36.3"`) {
		t.Errorf("init -force starter:\n%s", src)
	}
	if _, errOut, code := runCLI(t, "-chdir="+dir, "init", "-force", "-kubernetes-version", "1.20.0"); code != 1 || !strings.Contains(errOut, "not in the bundle") {
		t.Errorf("init with an unknown version: exit %d, %q", code, errOut)
	}
}

func TestInitNextToLabFile(t *testing.T) {
	dir := t.TempDir()
	lab := readFile(t, filepath.Join("..", "..", "examples", "lab", "lab.hcl"))
	writeFiles(t, dir, map[string]string{"lab.hcl": lab}, 0o644)
	out, errOut, code := runCLI(t, "-chdir="+dir, "init", "-name", "lab")
	if code != 0 || !strings.Contains(out, "Hosts come from lab.hcl") {
		t.Fatalf("init: exit %d, %q %q", code, out, errOut)
	}
	src := readFile(t, filepath.Join(dir, "cluster.hcl"))
	if strings.Contains(src, "\nhost ") || strings.Contains(src, "\nssh {") {
		t.Errorf("starter repeats the lab's hosts or ssh block:\n%s", src)
	}
	if out, errOut, code := runCLI(t, "-chdir="+dir, "validate"); code != 0 || !strings.Contains(out, "3 hosts") {
		t.Errorf("validate: exit %d\n%s%s", code, out, errOut)
	}
	if _, _, code := runCLI(t, "-chdir="+dir, "fmt", "-check"); code != 0 {
		t.Errorf("fmt -check: exit %d", code)
	}
}

func TestInitRefusesASecondClusterBlock(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"main.hcl": "cluster \"a\" {\n  kubernetes_version = \"1.37.2\"\n}\n"}, 0o644)
	if _, errOut, code := runCLI(t, "-chdir="+dir, "init"); code != 1 || !strings.Contains(errOut, "main.hcl already has a cluster block") {
		t.Errorf("exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "cluster.hcl")); err == nil {
		t.Error("init wrote cluster.hcl next to another cluster block")
	}
}

func TestClusterNameFor(t *testing.T) {
	for dir, want := range map[string]string{"/x/My_Cluster dir": "my-cluster-dir", "/x/--": "cluster", "/x/lab": "lab", "/x/" + strings.Repeat("a", 70): strings.Repeat("a", 63)} {
		if got := clusterNameFor(dir); got != want {
			t.Errorf("clusterNameFor(%q) = %q, want %q", dir, got, want)
		}
	}
}

// TestInitRefusesBadNames checks -name against the spec's rule for
// cluster names before anything is written: not the file, not the folder.
func TestInitRefusesBadNames(t *testing.T) {
	for _, name := range []string{"Bad Name", "evil\" {\n}\nhost \"evil\" {\n  address = \"10.6.6.6\"\n  roles = [\"worker\"]\n}\ncluster \"x", strings.Repeat("a", 64), "-x", "${var.x}"} {
		dir := filepath.Join(t.TempDir(), "spec")
		_, errOut, code := runCLI(t, "-chdir="+dir, "init", "-name", name)
		if code != 1 || !strings.HasPrefix(errOut, "Error: -name: the cluster name ") || !strings.Contains(errOut, "must be a DNS label: at most 63 lower-case letters, digits and '-'") {
			t.Errorf("init -name %q: exit %d, %q", name, code, errOut)
		}
		if strings.Count(errOut, "\n") != 1 {
			t.Errorf("init -name %q: the message is not one line: %q", name, errOut)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("init -name %q left %s behind (%v)", name, dir, err)
		}
	}
}

// TestStarterEscapesValues renders the starter with hostile values (past
// the name check, as a second line of defence): they stay strings and
// comments, adding no block.
func TestStarterEscapesValues(t *testing.T) {
	evil := "x\" {\n}\nhost \"evil\" {\n  address = \"10.6.6.6\"\n}\n# ${var.x} %{ if true }"
	src, err := renderStarter(starterData{Name: evil, KubernetesVersion: "1.37.2", Supported: "1.37.2\nhost \"e2\" {}", SSHFrom: "a\nssh {}\n.hcl", HostsFrom: "hosts.hcl"})
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, "cluster.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("starter does not parse: %v\n%s", diags, src)
	}
	var types []string
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		types = append(types, b.Type)
		if b.Type == "cluster" && b.Labels[0] != evil {
			t.Errorf("cluster label %q, want %q", b.Labels[0], evil)
		}
	}
	if strings.Join(types, " ") != "cluster" {
		t.Errorf("blocks %v, want only the cluster block:\n%s", types, src)
	}
}

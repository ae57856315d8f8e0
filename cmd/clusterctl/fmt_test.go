package main

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const unformatted = "cluster \"x\" {\nkubernetes_version=\"1.37.2\"\n  pod_cidr = \"10.244.0.0/16\"\n}\n"
const formatted = "cluster \"x\" {\n  kubernetes_version = \"1.37.2\"\n  pod_cidr           = \"10.244.0.0/16\"\n}\n"

func writeFiles(t *testing.T, dir string, files map[string]string, mode os.FileMode) {
	t.Helper()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFmtCheckDiffAndWrite(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.hcl": unformatted, "b.hcl": formatted, "prod.hclvars": "region=\"eu\"\nzone   = \"a\"\n", "notes.txt": "x=1", "sub/c.hcl": unformatted}, 0o600)

	out, errOut, code := runCLI(t, "-chdir="+dir, "fmt", "-check")
	if code != fmtExitUnformatted || out != "a.hcl\nprod.hclvars\n" || errOut != "" {
		t.Fatalf("fmt -check: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if readFile(t, filepath.Join(dir, "a.hcl")) != unformatted {
		t.Fatal("fmt -check wrote a file")
	}

	out, _, code = runCLI(t, "-chdir="+dir, "fmt", "-check", "-diff", "a.hcl")
	wantDiff := "a.hcl\n--- a/a.hcl\n+++ b/a.hcl\n@@ -1,4 +1,4 @@\n cluster \"x\" {\n-kubernetes_version=\"1.37.2\"\n-  pod_cidr = \"10.244.0.0/16\"\n+  kubernetes_version = \"1.37.2\"\n+  pod_cidr           = \"10.244.0.0/16\"\n }\n"
	if code != fmtExitUnformatted || out != wantDiff {
		t.Errorf("fmt -check -diff: exit %d\n%s", code, cmp.Diff(wantDiff, out))
	}

	out, _, code = runCLI(t, "-chdir="+dir, "fmt")
	if code != 0 || out != "a.hcl\nprod.hclvars\n" {
		t.Errorf("fmt: exit %d, stdout %q", code, out)
	}
	if got := readFile(t, filepath.Join(dir, "a.hcl")); got != formatted {
		t.Errorf("a.hcl after fmt:\n%s", got)
	}
	if st, _ := os.Stat(filepath.Join(dir, "a.hcl")); st.Mode().Perm() != 0o600 {
		t.Errorf("fmt changed the mode to %v", st.Mode().Perm())
	}
	if readFile(t, filepath.Join(dir, "sub", "c.hcl")) != unformatted {
		t.Error("fmt without -recursive formatted a subfolder")
	}
	if out, _, code = runCLI(t, "-chdir="+dir, "fmt", "-check", "-recursive"); code != fmtExitUnformatted || out != filepath.Join("sub", "c.hcl")+"\n" {
		t.Errorf("fmt -check -recursive: exit %d, %q", code, out)
	}
	if _, _, code = runCLI(t, "-chdir="+dir, "fmt", "-recursive"); code != 0 || readFile(t, filepath.Join(dir, "sub", "c.hcl")) != formatted {
		t.Errorf("fmt -recursive: exit %d", code)
	}
	if out, _, code = runCLI(t, "-chdir="+dir, "fmt", "-check", "-recursive"); code != 0 || out != "" {
		t.Errorf("second fmt -check: exit %d, %q", code, out)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestFmtSyntaxError(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"bad.hcl": "cluster \"x\" {\n  a = \n}\n", "good.hcl": unformatted}, 0o644)
	out, errOut, code := runCLI(t, "-chdir="+dir, "fmt")
	if code != 1 || !strings.Contains(errOut, "on bad.hcl line 2, column 7") || out != "good.hcl\n" {
		t.Errorf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if readFile(t, filepath.Join(dir, "bad.hcl")) != "cluster \"x\" {\n  a = \n}\n" {
		t.Error("fmt rewrote a file that does not parse")
	}
	if readFile(t, filepath.Join(dir, "good.hcl")) != formatted {
		t.Error("fmt skipped the good file")
	}
}

func TestFmtTargets(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"notes.txt": "x"}, 0o644)
	if _, errOut, code := runCLI(t, "-chdir="+dir, "fmt", "notes.txt"); code != 1 || !strings.Contains(errOut, "only *.hcl and *.hclvars") {
		t.Errorf("fmt notes.txt: exit %d, %q", code, errOut)
	}
	if _, _, code := runCLI(t, "-chdir="+dir, "fmt", "missing.hcl"); code != 1 {
		t.Errorf("fmt missing.hcl: exit %d", code)
	}
	var out, errb bytes.Buffer
	root := []string{"fmt", "-"}
	cmdErr := runWithStdin(root, strings.NewReader(unformatted), &out, &errb)
	if cmdErr != nil || out.String() != formatted {
		t.Errorf("fmt -: %v, %q", cmdErr, out.String())
	}
}

// runWithStdin runs the fmt command with its input from stdin.
func runWithStdin(args []string, stdin *strings.Reader, stdout, stderr *bytes.Buffer) error {
	g := &globals{chdir: "."}
	cmd := newFmtCmd(g)
	cmd.SetArgs(args[1:])
	cmd.SetIn(stdin)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	return cmd.ExecuteContext(context.Background())
}

func TestDiffLines(t *testing.T) {
	a := strings.Split("a b c d e f g h i j k l m", " ")
	b := strings.Split("a b X d e f g h i j k l m n", " ")
	var out bytes.Buffer
	writeUnifiedDiff(&out, "old", "new", strings.Join(a, "\n")+"\n", strings.Join(b, "\n")+"\n")
	want := "--- old\n+++ new\n@@ -1,6 +1,6 @@\n a\n b\n-c\n+X\n d\n e\n f\n@@ -11,3 +11,4 @@\n k\n l\n m\n+n\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("unified diff (-want +got):\n%s", diff)
	}

	// Property: the edit script turns a into b, for random small inputs.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 500; i++ {
		a, b := randLines(rng), randLines(rng)
		var gotA, gotB []string
		for _, e := range diffLines(a, b) {
			if e.op != '+' {
				gotA = append(gotA, e.line)
			}
			if e.op != '-' {
				gotB = append(gotB, e.line)
			}
		}
		if !cmp.Equal(a, gotA, cmpEmpty()) || !cmp.Equal(b, gotB, cmpEmpty()) {
			t.Fatalf("diff of %q and %q does not reproduce them: %q %q", a, b, gotA, gotB)
		}
	}
}

func cmpEmpty() cmp.Option {
	return cmp.FilterValues(func(x, y []string) bool { return len(x) == 0 && len(y) == 0 }, cmp.Ignore())
}

func randLines(rng *rand.Rand) []string {
	n := rng.IntN(8)
	var out []string
	for range n {
		out = append(out, string(rune('a'+rng.IntN(3))))
	}
	return out
}

func TestFmtAndPlanRefuseDeepNesting(t *testing.T) {
	dir := t.TempDir()
	deep := "locals {\n  x = " + strings.Repeat("[", 50000) + strings.Repeat("]", 50000) + "\n}\n"
	writeFiles(t, dir, map[string]string{"deep.hcl": deep}, 0o644)
	for _, args := range [][]string{{"fmt", "-check"}, {"fmt"}, {"plan", "-no-color"}} {
		var stderr string
		var code int
		n := allocated(func() { _, stderr, code = runCLI(t, append([]string{"-chdir=" + dir}, args...)...) })
		if code != 1 || !strings.Contains(stderr, "deep.hcl:2: nesting deeper than 256") || !strings.Contains(stderr, "on deep.hcl line 2, column 262") {
			t.Errorf("%v: exit %d\n%.1000s", args, code, stderr)
		}
		if n > 128<<20 {
			t.Errorf("%v allocated %d MiB", args, n>>20)
		}
	}
	if readFile(t, filepath.Join(dir, "deep.hcl")) != deep {
		t.Error("fmt rewrote the refused file")
	}
	var out, errb bytes.Buffer
	if err := runWithStdin([]string{"fmt", "-"}, strings.NewReader(deep), &out, &errb); exitCode(err, &errb) != 1 || !strings.Contains(errb.String(), "<stdin>:2: nesting deeper than 256") {
		t.Errorf("fmt -: %v\n%.1000s", err, errb.String())
	}
}

func TestFmtStdinIsBounded(t *testing.T) {
	var out, errb bytes.Buffer
	err := runWithStdin([]string{"fmt", "-"}, strings.NewReader(strings.Repeat("#\n", 600000)), &out, &errb)
	if code := exitCode(err, io.Discard); code != 1 || err.Error() != "<stdin>: larger than 1 MiB" || strings.Contains(out.String(), "#\n#") {
		t.Errorf("exit %d, %v, stdout %q", code, err, out.String())
	}
}

// TestFmtFollowsTheSymlinkRule checks that fmt reads symlinks as validate
// does: inside the folder they are formatted through the link (which stays
// a link), outside it they are refused, unread, with or without -recursive.
func TestFmtFollowsTheSymlinkRule(t *testing.T) {
	const secret = "SECRET_TOKEN=hunter2"
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.hcl": secret + "\n"}, 0o644)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"real/shared.hcl": unformatted, "cluster.hcl": formatted}, 0o644)
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Skip(err)
		}
	}
	link(filepath.Join("real", "shared.hcl"), "shared.hcl")

	out, errOut, code := runCLI(t, "-chdir="+dir, "fmt")
	if code != 0 || out != "shared.hcl\n" || errOut != "" {
		t.Fatalf("fmt with a link inside: exit %d, %q %q", code, out, errOut)
	}
	if st, err := os.Lstat(filepath.Join(dir, "shared.hcl")); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("fmt replaced the symlink: %v %v", st.Mode(), err)
	}
	if got := readFile(t, filepath.Join(dir, "real", "shared.hcl")); got != formatted {
		t.Errorf("the link's target is not formatted:\n%s", got)
	}
	if out, _, code := runCLI(t, "-chdir="+dir, "fmt", "-check", "-recursive"); code != 0 || out != "" {
		t.Errorf("fmt -check -recursive after formatting: exit %d, %q", code, out)
	}

	link(filepath.Join(outside, "secret.hcl"), "env.hcl")
	link(filepath.Join(outside, "secret.hcl"), filepath.Join("real", "env.hcl"))
	for _, args := range [][]string{{"fmt", "-check"}, {"fmt", "-check", "-recursive"}, {"fmt", "env.hcl"}, {"validate"}} {
		out, errOut, code := runCLI(t, append([]string{"-chdir=" + dir}, args...)...)
		if code != 1 || !strings.Contains(errOut, "env.hcl: symlink to outside the spec folder") || strings.Contains(out+errOut, "hunter2") {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q", args, code, out, errOut)
		}
		if args[len(args)-1] == "-recursive" && !strings.Contains(errOut, filepath.Join("real", "env.hcl")+": symlink to outside the spec folder") {
			t.Errorf("fmt -recursive does not refuse real/env.hcl:\n%s", errOut)
		}
	}
	if readFile(t, filepath.Join(outside, "secret.hcl")) != secret+"\n" {
		t.Error("fmt wrote outside the folder")
	}
}

package spec

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// Tests for hostile input: nesting the parser cannot take, unbounded and
// special files, symlinks out of the spec folder, and values that must be
// refused or not echoed in full.

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// memoryBound is what refusing any of the inputs below may allocate: a
// few times the bounded read, nowhere near what parsing them would take.
const memoryBound = 64 << 20

// deepSpec is the file: locals { x = [[[[…]]]] }, depth deep.
func deepSpec(depth int) []byte {
	return []byte("locals {\n  x = " + strings.Repeat("[", depth) + strings.Repeat("]", depth) + "\n}\n")
}

func TestDeepNestingIsRefusedBeforeParsing(t *testing.T) {
	src := deepSpec(50000)
	if len(src) < 100000 {
		t.Fatalf("test file only %d bytes", len(src))
	}
	var diags []string
	n := allocated(func() {
		_, d := Parse(map[string][]byte{"deep.hcl": src}, VarInputs{})
		for _, x := range d {
			diags = append(diags, firstError(hcl.Diagnostics{x}), x.Detail)
		}
	})
	want := []string{"deep.hcl:2 Nesting too deep", "deep.hcl:2: nesting deeper than 256. Brackets, braces, parentheses and template interpolations may nest at most that deep; flatten the expression."}
	if strings.Join(diags, "\n") != strings.Join(want, "\n") {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(diags, "\n"), strings.Join(want, "\n"))
	}
	if n > memoryBound {
		t.Errorf("refusing a %d-byte file allocated %d MiB", len(src), n>>20)
	}
	// The limit itself parses.
	if _, d := Parse(map[string][]byte{"ok.hcl": deepSpec(MaxNesting - 1)}, VarInputs{}); strings.Contains(d.Error(), "Nesting") {
		t.Errorf("depth %d refused: %v", MaxNesting-1, d)
	}
}

func TestCheckNesting(t *testing.T) {
	deep := func(open, close string) string { return strings.Repeat(open, 300) + strings.Repeat(close, 300) }
	for _, tc := range []struct {
		name, src string
		want      string // "" or "LINE Summary"
	}{
		{"brackets", "x = " + deep("[", "]"), "1 Nesting too deep"},
		{"objects", "x = " + deep("{a=", "}"), "1 Nesting too deep"},
		{"parentheses on line 3", "a = 1\n\nx = " + deep("(", ")"), "3 Nesting too deep"},
		{"blocks", deep("b {\n", "}\n"), "257 Nesting too deep"},
		{"interpolations", `x = "` + deep(`${"`, `"}`) + `"`, "1 Nesting too deep"},
		{"directives", `x = "` + strings.Repeat("%{ if true }", 300) + strings.Repeat("%{ endif }", 300) + `"`, "1 Nesting too deep"},
		{"heredoc interpolations", "x = <<EOT\n" + deep("${[", "]}") + "\nEOT\n", "2 Nesting too deep"},
		{"operators", "x = 1" + strings.Repeat(" + 1", MaxOperators+1), "1 Expression too complex"},
		{"unary", "x = " + strings.Repeat("!", MaxOperators+1) + "true", "1 Expression too complex"},
		{"conditionals", "x = " + strings.Repeat("true ? 1 : ", MaxOperators+1) + "2", "1 Expression too complex"},
		{"operators across lines in parentheses", "x = (1" + strings.Repeat("\n+ 1", MaxOperators+1) + ")", "1026 Expression too complex"},

		{"in a string", `x = "` + strings.Repeat("[{(", 300) + `"`, ""},
		{"escaped interpolation", `x = "` + strings.Repeat("$${", 300) + `"`, ""},
		{"in comments", "# " + strings.Repeat("[", 300) + "\n// " + strings.Repeat("{", 300) + "\n/* " + strings.Repeat("(", 300) + " */\nx = 1\n", ""},
		{"in a heredoc", "x = <<-EOT\n  " + strings.Repeat("[", 300) + "\n  EOT\ny = [1]\n", ""},
		{"string with escaped quote", `x = "\"` + strings.Repeat("[", 300) + `"`, ""},
		{"many short expressions", strings.Repeat("x = 1 + 2 - 3 * 4\n", 2000), ""},
		{"many list items", "x = [" + strings.Repeat("1 + 1, ", 2000) + "]", ""},
		{"closed levels", strings.Repeat("x = "+deep("[", "]")[100:500]+"\n", 50), ""},
		{"limit", "x = " + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if d := CheckNesting([]byte(tc.src), "f.hcl"); d != nil {
				got = strings.TrimPrefix(firstError(hcl.Diagnostics{d}), "f.hcl:")
				if !strings.HasPrefix(d.Detail, "f.hcl:"+strings.Fields(got)[0]+": ") {
					t.Errorf("detail %q does not start with FILE:LINE", d.Detail)
				}
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDeepVariableValueIsRefused(t *testing.T) {
	src := minimal + "variable \"l\" {\n  type = list(any)\n  default = []\n}\n"
	_, diags := parseStrings(map[string]string{"c.hcl": src}, VarInputs{Args: []VarArg{{Value: "l=" + strings.Repeat("[", 50000)}}})
	if got := firstError(diags); got != "c.hcl:9 Invalid value for variable" || !strings.Contains(diags[0].Detail, "<value for var.l>:1: nesting deeper than 256") {
		t.Errorf("%s: %v", got, diags)
	}
}

func writeSpec(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// errorsOf renders diagnostics as "FILE:LINE Summary: Detail" lines.
func errorsOf(diags hcl.Diagnostics) string {
	var out []string
	for _, d := range diags {
		out = append(out, firstError(hcl.Diagnostics{d})+": "+d.Detail)
	}
	return strings.Join(out, "\n")
}

func TestReadsAreBounded(t *testing.T) {
	dir := t.TempDir()
	writeSpec(t, dir, map[string]string{"c.hcl": minimal})
	for _, tc := range []struct {
		name  string
		files map[string]string
		vars  []VarArg
		want  string
	}{
		{"var-file /dev/zero", nil, []VarArg{{File: true, Value: "/dev/zero"}}, "- Not a regular file: /dev/zero: not a regular file (a device)."},
		{"var-file folder", nil, []VarArg{{File: true, Value: "."}}, "- Not a regular file: .: not a regular file (a folder)."},
		{"large spec file", map[string]string{"big.hcl": strings.Repeat("#", MaxFileSize+1)}, nil, "- File too large: big.hcl: larger than 1 MiB."},
		{"large var file", map[string]string{"v.hclvars": strings.Repeat("#", MaxFileSize+1)}, []VarArg{{File: true, Value: "v.hclvars"}}, "- File too large: v.hclvars: larger than 1 MiB."},
		{"large spec", map[string]string{"a.hcl": strings.Repeat("#", MaxFileSize), "b.hcl": strings.Repeat("#", MaxFileSize)}, nil, "- Spec too large: c.hcl: the spec and variable files together are larger than 2 MiB."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "spec")
			writeSpec(t, d, map[string]string{"c.hcl": minimal})
			writeSpec(t, d, tc.files)
			var c *Cluster
			var diags hcl.Diagnostics
			n := allocated(func() { c, diags = Load(d, VarInputs{Env: testEnv(), Args: tc.vars}) })
			if c != nil || errorsOf(diags) != tc.want {
				t.Errorf("got %s\nwant %s", errorsOf(diags), tc.want)
			}
			if n > memoryBound {
				t.Errorf("allocated %d MiB", n>>20)
			}
		})
	}
	// Parse holds in-memory callers to the same limits.
	_, diags := parseStrings(map[string]string{"c.hcl": minimal, "big.hcl": strings.Repeat("#", MaxFileSize+1)}, VarInputs{})
	if got := errorsOf(diags); got != "- File too large: big.hcl: larger than 1 MiB." {
		t.Errorf("Parse: %s", got)
	}
}

func TestReadFileRefusals(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(big, "big", 9); !errors.Is(err, ErrTooLarge) || err.Error() != "big: larger than 9 bytes" {
		t.Errorf("ReadFile over the limit: %v", err)
	}
	if b, err := ReadFile(big, "big", 10); err != nil || len(b) != 10 {
		t.Errorf("ReadFile at the limit: %d bytes, %v", len(b), err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), "missing", 10); err == nil || err.Error() != "missing: no such file or directory" {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
	// Files that report no size (those of /proc) are bounded while read.
	if _, err := ReadStream(strings.NewReader(strings.Repeat("x", 11)), "<stdin>", 10); !errors.Is(err, ErrTooLarge) || err.Error() != "<stdin>: larger than 10 bytes" {
		t.Errorf("ReadStream: %v", err)
	}
	if runtime.GOOS == "linux" {
		if _, err := ReadFile("/proc/self/environ", "environ", 1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("ReadFile of /proc/self/environ with a 1-byte limit: %v", err)
		}
	}
}

func TestCAFileIsBounded(t *testing.T) {
	src := minimal + "registry \"r.example.com\" {\n  ca_file = \"/dev/zero\"\n}\n"
	_, diags := parseStrings(map[string]string{"c.hcl": src}, VarInputs{})
	if got, want := errorsOf(diags), `c.hcl:10 Unreadable ca_file: ca_file "/dev/zero": not a regular file (a device).`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("no symlinks here: %v", err)
	}
}

func TestSymlinkedSpecFiles(t *testing.T) {
	const secret = "hunter2-not-for-diagnostics"
	outside := t.TempDir()
	writeSpec(t, outside, map[string]string{"secret.hcl": "TOKEN=" + secret + "\n", "vars.hclvars": "x = \"" + secret + "\"\n"})

	t.Run("inside", func(t *testing.T) {
		dir := t.TempDir()
		writeSpec(t, dir, map[string]string{"real/main.hcl": minimal})
		symlink(t, filepath.Join("real", "main.hcl"), filepath.Join(dir, "main.hcl"))
		if c, diags := Load(dir, VarInputs{Env: testEnv()}); c == nil {
			t.Errorf("a symlink inside the folder is read: %v", diags)
		}
	})
	for _, tc := range []struct {
		name, link, target string
		vars               []VarArg
		want               string
	}{
		{"spec file to outside", "env.hcl", filepath.Join(outside, "secret.hcl"), nil, "- Symlink outside the spec folder: env.hcl: symlink to outside the spec folder."},
		{"relative link to outside", "env.hcl", filepath.Join("..", filepath.Base(outside), "secret.hcl"), nil, "- Symlink outside the spec folder: env.hcl: symlink to outside the spec folder."},
		{"auto vars to outside", "x.auto.hclvars", filepath.Join(outside, "vars.hclvars"), nil, "- Symlink outside the spec folder: x.auto.hclvars: symlink to outside the spec folder."},
		{"var-file in the folder to outside", "v.hclvars", filepath.Join(outside, "vars.hclvars"), []VarArg{{File: true, Value: "v.hclvars"}}, "- Symlink outside the spec folder: v.hclvars: symlink to outside the spec folder."},
		{"environ", "env.hcl", "/proc/self/environ", nil, "- Symlink outside the spec folder: env.hcl: symlink to outside the spec folder."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.target, "/proc/") && runtime.GOOS != "linux" {
				t.Skip("no /proc")
			}
			parent := filepath.Dir(outside)
			dir, err := os.MkdirTemp(parent, "spec")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			writeSpec(t, dir, map[string]string{"c.hcl": minimal})
			symlink(t, tc.target, filepath.Join(dir, tc.link))
			c, diags := Load(dir, VarInputs{Env: testEnv(), Args: tc.vars})
			if got := errorsOf(diags); c != nil || got != tc.want {
				t.Errorf("got %s\nwant %s", got, tc.want)
			}
			for _, d := range diags {
				if d.Subject != nil || strings.Contains(d.Detail, secret) {
					t.Errorf("the diagnostic points into or shows the file: %+v", d)
				}
			}
			if _, err := ReadSource(dir, tc.link); !errors.Is(err, ErrOutsideFolder) {
				t.Errorf("ReadSource (what diagnostics show) read it: %v", err)
			}
		})
	}
	t.Run("var-file named outside the folder", func(t *testing.T) {
		dir := t.TempDir()
		writeSpec(t, dir, map[string]string{"c.hcl": minimal + "variable \"x\" {\n  default = \"\"\n}\n"})
		link := filepath.Join(t.TempDir(), "v.hclvars")
		symlink(t, filepath.Join(outside, "vars.hclvars"), link)
		if c, diags := Load(dir, VarInputs{Env: testEnv(), Args: []VarArg{{File: true, Value: link}}}); c == nil {
			t.Errorf("a -var-file the user names outside the folder is read: %v", diags)
		}
	})
}

func TestDuplicateTaints(t *testing.T) {
	src := minimal[:len(minimal)-2] + "  taints = [\"a=1:NoSchedule\", \"b:NoSchedule\", \"a=2:NoSchedule\", \"a:NoExecute\"]\n}\n"
	_, diags := parseStrings(map[string]string{"c.hcl": src}, VarInputs{})
	want := `c.hcl:8 Duplicate taint: Host "n1" has two taints with key "a" and effect NoSchedule (the first at c.hcl:8); Kubernetes allows one taint per key and effect.`
	if got := errorsOf(diags); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestVersionsArePlainReleases(t *testing.T) {
	for v, want := range map[string]string{
		"1.37.2+build": `c.hcl:3 Invalid version: kubernetes_version: version "1.37.2+build" is not MAJOR.MINOR.PATCH, like 1.37.2 (no pre-release or build suffix).`,
		"1.37.2-rc.1":  `c.hcl:3 Invalid version: kubernetes_version: version "1.37.2-rc.1" is not MAJOR.MINOR.PATCH, like 1.37.2 (no pre-release or build suffix).`,
		"v1.37.2":      "",
	} {
		src := strings.Replace(minimal, `"1.36.3"`, `"`+v+`"`, 1)
		_, diags := parseStrings(map[string]string{"c.hcl": src}, VarInputs{})
		if got := errorsOf(diags); got != want {
			t.Errorf("%s: got %s\nwant %s", v, got, want)
		}
	}
	src := minimal + "component \"etcd\" {\n  version = \"3.6.16+meta\"\n}\n"
	_, diags := parseStrings(map[string]string{"c.hcl": src}, VarInputs{})
	if got, want := errorsOf(diags), `c.hcl:10 Invalid version: Version of etcd: version "3.6.16+meta" is not MAJOR.MINOR.PATCH, like 1.37.2 (no pre-release or build suffix).`; got != want {
		t.Errorf("component: got %s\nwant %s", got, want)
	}
}

func TestAddressFamiliesMustMatch(t *testing.T) {
	v6 := strings.Replace(minimal, "192.168.1.10", "fd00::10", 1)
	_, diags := parseStrings(map[string]string{"c.hcl": v6}, VarInputs{})
	want := `c.hcl:6 Mixed address families: Host "n1" has the IPv6 address fd00::10, but pod_cidr 10.244.0.0/16 and service_cidr 10.96.0.0/12 are IPv4. clusterctl builds single-stack clusters (dual-stack is not supported): give the host an IPv4 address (or internal_address), or use IPv6 ranges.`
	if got := errorsOf(diags); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	internal := strings.Replace(minimal, `address = "192.168.1.10"`, "address = \"192.168.1.10\"\n  internal_address = \"fd00::10\"", 1)
	_, diags = parseStrings(map[string]string{"c.hcl": internal}, VarInputs{})
	if got := errorsOf(diags); !strings.HasPrefix(got, `c.hcl:7 Mixed address families: Host "n1" has the IPv6 address fd00::10`) || !strings.Contains(got, "an IPv4 internal_address") {
		t.Errorf("internal_address: %s", got)
	}
	// One family throughout is fine.
	single := strings.Replace(v6, `kubernetes_version = "1.36.3"`, "kubernetes_version = \"1.36.3\"\n  pod_cidr = \"fd10::/56\"\n  service_cidr = \"fd20::/112\"", 1)
	if _, diags := parseStrings(map[string]string{"c.hcl": single}, VarInputs{}); diags.HasErrors() {
		t.Errorf("IPv6 cluster: %v", diags)
	}
}

func TestLongValuesAreNotEchoed(t *testing.T) {
	long := strings.Repeat("h", 64)
	src := strings.Replace(minimal, `host "n1"`, `host "`+long+`"`, 1)
	_, diags := parseStrings(map[string]string{"c.hcl": src}, VarInputs{})
	want := `c.hcl:5 Invalid host name: Host name "` + long + `" becomes the Kubernetes node name, so it must be a lower-case DNS name: its part "` + long + `" is 64 characters, and each dot-separated part (a DNS label) is at most 63 characters.`
	if got := errorsOf(diags); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}

	huge := strings.Repeat("v", 50<<20)
	src = minimal[:len(minimal)-2] + "  labels = { zone = var.zone }\n}\nvariable \"zone\" {\n  type = string\n}\n"
	_, diags = parseStrings(map[string]string{"c.hcl": src}, VarInputs{Args: []VarArg{{Value: "zone=" + huge}}})
	got := errorsOf(diags)
	want = `c.hcl:8 Invalid label: Label "zone" of host "n1" has value "` + strings.Repeat("v", MaxShown) + `…" (52428800 bytes); it is 52428800 characters, and a label value is at most 63 characters.`
	if got != want {
		t.Errorf("got %.500s\nwant %s", got, want)
	}
}

func TestClipQuoted(t *testing.T) {
	long := strings.Repeat("é", 40) // 80 bytes
	for in, want := range map[string]string{
		`short "value" stays`:                        `short "value" stays`,
		`a "` + long + `" b`:                         `a "` + strings.Repeat("é", 32) + `…" (80 bytes) b`,
		`escapes "` + strings.Repeat(`\n`, 40) + `"`: `escapes "` + strings.Repeat(`\n`, 32) + `…" (80 bytes)`,
		quote(long) + " again":                       quote(long) + " again",
		`unbalanced "` + long:                        `unbalanced "` + long,
	} {
		if got := clipQuoted(in); got != want {
			t.Errorf("clipQuoted(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}

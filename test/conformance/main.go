// Command conformance runs the upstream Kubernetes conformance suite
// (`e2e.test` from k8s.io/kubernetes at the cluster's version) against a lab
// cluster, offline, and prints the pass count and every failure.
//
//	make conformance                     # = go run ./test/conformance -dir mylab
//	go run ./test/conformance -dir mylab -focus 'DNS' -procs 2
//
// It needs root, a filled bundle (`make bundle`: the Kubernetes build
// workspace is reused) and the lab cluster of `make cluster` (or any lab
// folder with a cluster.hcl that applies). Steps:
//
//  1. Build e2e.test, ginkgo and agnhost in the bundle's k8s.io/kubernetes
//     workspace (cached under ~/.cache/clusterctl/conformance/VERSION).
//  2. Assemble the test images the suite names that can be made here
//     (images.go) and put them on every node with the spec's image blocks
//     (conformance-images.hcl in the lab folder, then clusterctl apply),
//     and serve them from a registry on the lab bridge that the nodes use
//     as a mirror of "localhost" (registry.go), for pulls with
//     imagePullPolicy Always.
//  3. Run the parallel part ([Conformance], not [Serial]) with -procs
//     processes, then the serial part, with KUBE_TEST_REPO_LIST naming
//     localhost/e2e for every registry the suite uses.
//  4. Read the JUnit reports and print passed, failed and skipped, with the
//     failures by name.
//
// It is not part of `make check`: the whole suite takes about an hour.
package main

import (
	"context"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", "mylab", "the lab folder with the cluster (make cluster's)")
	version := flag.String("version", "1.37.2", "the cluster's Kubernetes version (e2e.test is built at it)")
	procs := flag.Int("procs", 4, "parallel ginkgo processes for the parallel part")
	focus := flag.String("focus", `\[Conformance\]`, "ginkgo focus regexp")
	skip := flag.String("skip", "", "ginkgo skip regexp (added to the parallel part's [Serial])")
	parallel := flag.Bool("parallel", true, "run the parallel part (the tests not marked [Serial])")
	serial := flag.Bool("serial", true, "run the [Serial] conformance tests after the parallel part")
	clusterctl := flag.String("clusterctl", "bin/clusterctl", "the clusterctl binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, options{dir: *dir, version: *version, procs: *procs, focus: *focus, skip: *skip, parallel: *parallel, serial: *serial, clusterctl: *clusterctl}); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

type options struct {
	dir, version, focus, skip, clusterctl string
	procs                                 int
	parallel, serial                      bool
}

func cacheDir() string {
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "clusterctl")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "clusterctl")
}

func run(ctx context.Context, o options) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "cluster.hcl")); err != nil {
		return fmt.Errorf("%s has no cluster.hcl: run `make cluster` first (or pass -dir): %w", dir, err)
	}
	ws := filepath.Join(cacheDir(), "build", "kubernetes-v"+o.version)
	if _, err := os.Stat(filepath.Join(ws, "go.mod")); err != nil {
		return fmt.Errorf("no k8s.io/kubernetes v%s build workspace at %s: run `make bundle` first", o.version, ws)
	}
	out := filepath.Join(cacheDir(), "conformance", o.version)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	step("build e2e.test, ginkgo and agnhost in %s", ws)
	if err := buildTools(ctx, ws, out, o.version); err != nil {
		return err
	}

	step("test images")
	imgDir := filepath.Join(dir, "conformance-images")
	made, missing, err := makeImages(ctx, imgDir, out, o.version)
	if err != nil {
		return err
	}
	for _, m := range made {
		fmt.Printf("  %s\n", m.ref)
	}
	for _, m := range missing {
		fmt.Printf("  not available offline: %s (%s)\n", m.ref, m.why)
	}
	step("test-image registry on the lab bridge (for pulls with imagePullPolicy Always)")
	mirror, stopRegistry, err := serveImages(ctx, dir, made)
	if err != nil {
		return err
	}
	defer stopRegistry()
	fmt.Printf("  %s serves %d images\n", mirror, len(made))
	if err := os.WriteFile(filepath.Join(dir, "conformance-images.hcl"), imageBlocks(made, mirror), 0o644); err != nil {
		return err
	}
	step("clusterctl apply: the test images onto every node")
	if err := sh(ctx, "", nil, o.clusterctl, "-chdir="+dir, "apply", "-auto-approve"); err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "admin.conf")
	if err := sh(ctx, "", nil, o.clusterctl, "-chdir="+dir, "kubeconfig", "-o", kubeconfig); err != nil {
		return err
	}
	repoList := filepath.Join(out, "repo-list.yaml")
	if err := os.WriteFile(repoList, []byte(repoListYAML), 0o644); err != nil {
		return err
	}

	report := filepath.Join(dir, "conformance-report", time.Now().UTC().Format("20060102T150405"))
	env := []string{"KUBE_TEST_REPO_LIST=" + repoList}
	kubectl := filepath.Join(cacheDir(), "artifacts", "kubectl", o.version, "linux-amd64", "kubectl")
	e2eFlags := []string{"--kubeconfig=" + kubeconfig, "--provider=skeleton", "--report-dir=" + report, "--kubectl-path=" + kubectl}
	type part struct {
		name, focus, skip string
		procs             int
	}
	var parts []part
	if o.parallel {
		parts = append(parts, part{"parallel", o.focus, join(`\[Serial\]`, o.skip), o.procs})
	}
	if o.serial {
		parts = append(parts, part{"serial", `\[Serial\].*` + o.focus + `|` + o.focus + `.*\[Serial\]`, o.skip, 1})
	}
	if len(parts) == 0 {
		return fmt.Errorf("nothing to run: -parallel=false and -serial=false")
	}
	var all []result
	for _, p := range parts {
		step("%s part: focus %q skip %q, %d processes", p.name, p.focus, p.skip, p.procs)
		pdir := filepath.Join(report, p.name)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return err
		}
		args := []string{"run", "--procs=" + fmt.Sprint(p.procs), "--timeout=4h", "--output-dir=" + pdir, "--junit-report=junit.xml",
			"--focus=" + p.focus, "--no-color"}
		if p.skip != "" {
			args = append(args, "--skip="+p.skip)
		}
		args = append(args, filepath.Join(out, "e2e.test"), "--")
		args = append(args, e2eFlags...)
		start := time.Now()
		runErr := sh(ctx, pdir, env, filepath.Join(out, "ginkgo"), args...)
		rs, err := readJUnit(filepath.Join(pdir, "junit.xml"))
		if err != nil {
			return fmt.Errorf("%s part: %w (ginkgo: %v)", p.name, err, runErr)
		}
		fmt.Printf("%s part took %s\n", p.name, time.Since(start).Round(time.Second))
		all = append(all, rs...)
	}
	summarize(all, missing)
	fmt.Printf("reports: %s\n", report)
	return nil
}

func join(a, b string) string {
	if b == "" {
		return a
	}
	return a + "|" + b
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

// sh runs a command with its output on ours.
func sh(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// buildTools builds what the run needs in the Kubernetes workspace, each
// once (delete the folder to rebuild): the suite, its runner, and the
// programs of the test images that are Go (agnhost; sample-apiserver, from
// the staging module at the same release).
func buildTools(ctx context.Context, ws, out, version string) error {
	env := []string{"GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0"}
	// e2e.test reads its Kubernetes version from component-base, as the
	// servers do: stamped like the bundle's binaries (bundle/build), or the
	// tests that pick fixtures by version (Pod Security levels) find v0.0.
	major, minor, _ := strings.Cut(version, ".")
	minor, _, _ = strings.Cut(minor, ".")
	var stamp []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		stamp = append(stamp, "-X", pkg+".gitVersion=v"+version, "-X", pkg+".gitMajor="+major, "-X", pkg+".gitMinor="+minor, "-X", pkg+".gitTreeState=clean")
	}
	for _, b := range []struct{ file, pkg string }{
		{"agnhost", "k8s.io/kubernetes/test/images/agnhost"},
		{"sample-apiserver", "k8s.io/sample-apiserver"},
		{"nnp", "k8s.io/kubernetes/test/images/nonewprivs"},
		{"ginkgo", "github.com/onsi/ginkgo/v2/ginkgo"},
		{"e2e.test", "k8s.io/kubernetes/test/e2e"},
		{"envsh", "./test/conformance/envsh"}, // ours: built in this repository
	} {
		dir := ws
		if strings.HasPrefix(b.pkg, "./") {
			dir = "."
		}
		dst := filepath.Join(out, b.file)
		args := []string{"build", "-trimpath", "-o", dst + ".tmp", b.pkg}
		if b.file == "e2e.test" {
			args = []string{"test", "-c", "-trimpath", "-ldflags=" + strings.Join(stamp, " "), "-o", dst + ".tmp", b.pkg}
		}
		// A tool is rebuilt when the command that built it changed.
		how := strings.Join(args, " ") + "\n"
		// Ours is always built (Go's build cache makes that quick), so an
		// edit reaches the image.
		if was, err := os.ReadFile(dst + ".how"); err == nil && string(was) == how && dir == ws {
			if _, err := os.Stat(dst); err == nil {
				fmt.Printf("  %s: cached\n", dst)
				continue
			}
		}
		start := time.Now()
		if err := sh(ctx, dir, env, "go", args...); err != nil {
			return err
		}
		if err := os.Rename(dst+".tmp", dst); err != nil {
			return err
		}
		if err := os.WriteFile(dst+".how", []byte(how), 0o644); err != nil {
			return err
		}
		fmt.Printf("  %s: built in %s\n", b.file, time.Since(start).Round(time.Second))
	}
	return nil
}

// repoListYAML points every registry the suite names at localhost/e2e,
// where the images of images.go are; the one meant to be invalid stays so.
const repoListYAML = `promoterE2eRegistry: localhost/e2e
buildImageRegistry: localhost/e2e
gcEtcdRegistry: localhost/e2e
gcRegistry: localhost/e2e
sigStorageRegistry: localhost/e2e
privateRegistry: localhost/e2e-private
dockerLibraryRegistry: localhost/e2e
cloudProviderGcpRegistry: localhost/e2e
invalidRegistry: invalid.example.invalid
`

type result struct {
	name    string
	failed  bool
	skipped bool
	message string
}

// readJUnit reads ginkgo's JUnit report: one testcase per spec.
func readJUnit(path string) ([]result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Status  string `xml:"status,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
				Error *struct {
					Message string `xml:"message,attr"`
				} `xml:"error"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out []result
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			if strings.HasPrefix(c.Name, "[SynchronizedBeforeSuite]") || strings.HasPrefix(c.Name, "[SynchronizedAfterSuite]") ||
				strings.HasPrefix(c.Name, "[ReportAfterSuite]") || strings.HasPrefix(c.Name, "[ReportBeforeSuite]") {
				continue
			}
			r := result{name: c.Name, skipped: c.Skipped != nil || c.Status == "skipped"}
			switch {
			case c.Failure != nil:
				r.failed, r.message = true, c.Failure.Message
			case c.Error != nil:
				r.failed, r.message = true, c.Error.Message
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func summarize(rs []result, missing []image) {
	var passed, failed, skipped int
	var fails []result
	for _, r := range rs {
		switch {
		case r.failed:
			failed++
			fails = append(fails, r)
		case r.skipped:
			skipped++
		default:
			passed++
		}
	}
	sort.Slice(fails, func(i, j int) bool { return fails[i].name < fails[j].name })
	step("result: %d passed, %d failed (%d run), %d skipped", passed, failed, passed+failed, skipped)
	for _, f := range fails {
		msg := strings.Join(strings.Fields(f.message), " ")
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		fmt.Printf("FAIL %s\n     %s\n", f.name, msg)
	}
	if len(missing) > 0 {
		fmt.Println("\nimages not available offline (tests that need them fail pulling):")
		for _, m := range missing {
			fmt.Printf("  %s: %s\n", m.ref, m.why)
		}
	}
}

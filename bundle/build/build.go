// Package build fills the artifact cache from upstream sources: every Go
// component is built with `go build` in a generated module that requires the
// pinned upstream tag, fetched through the Go module proxy; the two images
// are assembled by package images.
package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/bundle/images"
)

// Builder builds artifacts into a cache. Builds run one at a time: a
// Kubernetes link alone wants about 2.5 GB and both cores.
type Builder struct {
	Cache    *bundle.Cache
	WorkRoot string          // generated build modules live here, one per upstream tag
	Platform bundle.Platform // target; the host platform if zero
	Go       string          // go command; "go" if empty
	Out      io.Writer       // progress lines; nil for none
	Force    bool            // rebuild even what is cached
}

// Result says what Ensure did for one artifact.
type Result struct {
	Artifact bundle.Artifact
	Manifest bundle.Manifest
	Reused   bool          // already cached and verified; nothing built
	Took     time.Duration // this call's wall time (verification only when reused)
}

func (b *Builder) goCmd() string {
	if b.Go != "" {
		return b.Go
	}
	return "go"
}

func (b *Builder) platform() bundle.Platform {
	if b.Platform == (bundle.Platform{}) {
		return bundle.HostPlatform()
	}
	return b.Platform
}

func (b *Builder) printf(format string, args ...any) {
	if b.Out != nil {
		fmt.Fprintf(b.Out, format, args...)
	}
}

// Ensure makes sure a is in the cache: a verified cached copy is reused,
// anything else is built. Files are built to temporary names in the
// artifact's folder and renamed into place; the manifest is written last, so
// an interrupted build leaves nothing that counts as cached.
func (b *Builder) Ensure(ctx context.Context, a bundle.Artifact) (Result, error) {
	p := b.platform()
	start := time.Now()
	recipe, err := Fingerprint(a, p)
	if err != nil {
		return Result{}, fmt.Errorf("building %s %s: %w", a.ID(), p, err)
	}
	if !b.Force {
		m, err := b.Cache.VerifyArtifact(a.Component, a.Version, p)
		if err == nil && !reusable(m, recipe) {
			err = fmt.Errorf("the build recipe changed since %s", m.BuiltAt.Local().Format("2006-01-02 15:04"))
		}
		if err == nil {
			r := Result{Artifact: a, Manifest: m, Reused: true, Took: time.Since(start)}
			b.printf("reusing %s %s (%s, built %s)\n", a.ID(), p, FormatSize(m.Size()), m.BuiltAt.Local().Format("2006-01-02 15:04"))
			return r, nil
		}
		if !errors.Is(err, bundle.ErrNotCached) {
			b.printf("rebuilding %s %s: %v\n", a.ID(), p, err)
		}
	}
	dir := b.Cache.Dir(a.Component, a.Version, p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	if err := b.Cache.Invalidate(a.Component, a.Version, p); err != nil {
		return Result{}, err
	}
	b.printf("building %s %s ... ", a.ID(), p)
	m := bundle.Manifest{Component: a.Component, Version: a.Version, OS: p.OS, Arch: p.Arch, Image: a.Image, Recipe: recipe}
	if err := b.make(ctx, a, p, dir, &m); err != nil {
		b.printf("failed\n")
		return Result{}, fmt.Errorf("building %s %s: %w", a.ID(), p, err)
	}
	took := time.Since(start)
	m.BuiltAt = time.Now().UTC().Truncate(time.Second)
	m.Seconds = float64(took.Round(100*time.Millisecond).Milliseconds()) / 1000
	m, err = b.Cache.Commit(m, a.Files)
	if err != nil {
		b.printf("failed\n")
		return Result{}, fmt.Errorf("recording %s %s: %w", a.ID(), p, err)
	}
	b.printf("%s, %s\n", FormatDuration(took), FormatSize(m.Size()))
	return Result{Artifact: a, Manifest: m, Took: took}, nil
}

// reusable says whether a cached entry may stand for a build with recipe: it
// was built with the same inputs, or it holds upstream's official files.
func reusable(m bundle.Manifest, recipe string) bool {
	return m.Recipe == recipe || strings.HasPrefix(m.Recipe, "download:")
}

// Fingerprint is the manifest's Recipe for building a on p: a hash of
// everything that decides the output besides the Go toolchain (modules,
// version, packages, tags, linker flags, cgo; the program source for the
// images). Changing a recipe rebuilds what it makes; a new Go release does
// not by itself.
func Fingerprint(a bundle.Artifact, p bundle.Platform) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %s %q %s\n", a.Component, a.Version, p, a.Files, a.Image)
	r, err := goRecipeFor(a)
	if err != nil {
		return "", err
	}
	if r == nil {
		src, err := images.Source(a.Component)
		if err != nil {
			return "", err
		}
		h.Write(src)
	} else {
		fmt.Fprintf(h, "%q %s\n", r.modules, r.version)
		for _, bin := range r.binaries {
			var stamp []string
			if bin.stamp != nil {
				stamp = bin.stamp(time.Time{})
			}
			fmt.Fprintf(h, "%s %s cgo=%v tags=%q ldflags=%q stamp=%q\n", bin.file, bin.pkg, bin.cgo, bin.tags, bin.ldflags, stamp)
		}
		if r.image != nil {
			fmt.Fprintf(h, "image /%s ports=%q layout=%d\n", r.image.binary, r.image.ports, images.LayoutVersion)
		}
	}
	return "build:" + hex.EncodeToString(h.Sum(nil)), nil
}

// make produces every file of a into dir and fills m's source fields.
func (b *Builder) make(ctx context.Context, a bundle.Artifact, p bundle.Platform, dir string, m *bundle.Manifest) error {
	switch a.Component {
	case bundle.PauseImage, bundle.EchoImage:
		m.Toolchain = runtime.Version()
		m.Source = "assembled by clusterctl (go-containerregistry) from its own Go program, " + a.Image
		return placeFile(dir, a.Files[0], func(tmp string) error {
			return images.Write(ctx, images.Spec{Kind: a.Component, Ref: a.Image, Platform: images.Platform{OS: p.OS, Arch: p.Arch}, Go: b.goCmd(), WorkDir: filepath.Join(b.WorkRoot, "images")}, tmp)
		})
	}
	r, err := goRecipeFor(a)
	if err != nil {
		return err
	}
	ws, tagTime, err := b.workspace(ctx, r)
	if err != nil {
		return err
	}
	toolchain, err := b.goVersion(ctx, ws)
	if err != nil {
		return err
	}
	m.Toolchain = toolchain
	m.Source = fmt.Sprintf("built from %s@%s (go build -trimpath, workspace %s)", strings.Join(r.modules, "+"), r.version, ws)
	byFile := map[string]goBinary{}
	for _, bin := range r.binaries {
		byFile[bin.file] = bin
	}
	for _, file := range a.Files {
		bin, ok := byFile[file]
		if !ok {
			return fmt.Errorf("recipe for %s has no binary %s", a.ID(), file)
		}
		err := placeFile(dir, file, func(tmp string) error {
			if r.image == nil {
				return b.goBuild(ctx, ws, p, bin, tagTime, tmp)
			}
			exe := tmp + ".bin"
			defer os.Remove(exe)
			if err := b.goBuild(ctx, ws, p, bin, tagTime, exe); err != nil {
				return err
			}
			m.Source += ", as /" + r.image.binary + " in " + a.Image
			return images.WriteBinary(tmp, a.Image, images.Platform{OS: p.OS, Arch: p.Arch}, exe, r.image.binary, r.image.ports...)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// placeFile runs make with a temporary path next to dir/name and renames the
// result into place only if make succeeded.
func placeFile(dir, name string, make func(tmp string) error) error {
	final := filepath.Join(dir, name)
	f, err := bundle.TempFile(final)
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	if err := make(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	mode := os.FileMode(0o755)
	if strings.HasSuffix(name, ".tar") {
		mode = 0o644
	}
	if err := os.Chmod(tmp, mode); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// goBuild runs one `go build` in the workspace.
func (b *Builder) goBuild(ctx context.Context, ws string, p bundle.Platform, bin goBinary, tagTime time.Time, out string) error {
	ldflags := append([]string{"-s", "-w"}, bin.ldflags...)
	if bin.stamp != nil {
		for _, x := range bin.stamp(tagTime) {
			ldflags = append(ldflags, "-X", x)
		}
	}
	args := []string{"build", "-trimpath", "-o", out, "-ldflags", strings.Join(ldflags, " ")}
	if len(bin.tags) > 0 {
		args = append(args, "-tags", strings.Join(bin.tags, ","))
	}
	args = append(args, bin.pkg)
	cgo := "0"
	if bin.cgo {
		cgo = "1"
	}
	cmd := exec.CommandContext(ctx, b.goCmd(), args...)
	cmd.Dir = ws
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED="+cgo,
		"GOOS="+p.OS,
		"GOARCH="+p.Arch,
		"GO111MODULE=on",
		"GOWORK=off",
		// The generated go.mod lists only the upstream module: let go add
		// the go.sum lines it needs on the first build.
		"GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"),
	)
	// On cancellation let go stop its compilers and clean up, rather than
	// killing it outright.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), ws, err, lastLines(output.String(), 30))
	}
	return nil
}

func (b *Builder) goVersion(ctx context.Context, ws string) (string, error) {
	cmd := exec.CommandContext(ctx, b.goCmd(), "env", "GOVERSION")
	cmd.Dir = ws
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// FormatSize prints a byte count the way the progress lines do: "119 MB".
func FormatSize(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%d MB", (n+(1<<19))>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", (n+(1<<9))>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// FormatDuration prints whole seconds, or tenths under ten seconds.
func FormatDuration(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%ds", int(d.Round(time.Second).Seconds()))
}

// Package images assembles the bundle's two container images, the pod
// sandbox (pause) and the test workload (echo), from small Go programs shipped
// in this package's src folder. Each image is one static binary in one layer,
// written as a docker-archive tarball with its reference embedded: the format
// both `ctr images import` and containerd's client Import accept offline.
package images

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/clusterctl/clusterctl/bundle"
)

//go:embed src/pause/main.go src/echo/main.go
var sources embed.FS

// Platform is the image's os/arch.
type Platform struct{ OS, Arch string }

// Spec says which image to write.
type Spec struct {
	Kind     string // bundle.PauseImage or bundle.EchoImage
	Ref      string // reference embedded in the archive, e.g. localhost/clusterctl-echo:v1
	Platform Platform
	Go       string // go command
	WorkDir  string // where the programs are built
}

// program returns the source folder and the image settings of an image kind.
func program(kind string) (src, binary string, cfg v1.Config, err error) {
	switch kind {
	case bundle.PauseImage:
		return "src/pause", "pause", v1.Config{Entrypoint: []string{"/pause"}}, nil
	case bundle.EchoImage:
		return "src/echo", "echo", v1.Config{
			Entrypoint:   []string{"/echo"},
			ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", bundle.EchoPort): {}},
			Env:          []string{"PATH=/"},
		}, nil
	}
	return "", "", v1.Config{}, fmt.Errorf("no image program for %q", kind)
}

// Source returns what an image is made from: its program's source and
// the image settings, for fingerprinting.
func Source(kind string) ([]byte, error) {
	src, binary, cfg, err := program(kind)
	if err != nil {
		return nil, err
	}
	main, err := sources.ReadFile(src + "/main.go")
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(main, "\n%s %+v", binary, cfg), nil
}

// Write builds the image's program and writes the image archive to out.
func Write(ctx context.Context, s Spec, out string) error {
	src, binary, cfg, err := program(s.Kind)
	if err != nil {
		return err
	}
	ref, err := name.NewTag(s.Ref, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", s.Ref, err)
	}
	bin, err := buildProgram(ctx, s, src)
	if err != nil {
		return err
	}
	img, err := Image(bin, binary, cfg, s.Platform)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, ref, img)
}

// LayoutVersion changes when the way Image lays out an image changes, so
// that recipes which use it rebuild.
const LayoutVersion = 1

// WriteBinary writes an image archive whose one layer holds the binary exe
// as /name, its entrypoint, exposing ports ("53/udp").
func WriteBinary(out, ref string, p Platform, exe, binary string, ports ...string) error {
	tag, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		return err
	}
	cfg := v1.Config{Entrypoint: []string{"/" + binary}, Env: []string{"PATH=/"}, ExposedPorts: map[string]struct{}{}}
	for _, port := range ports {
		cfg.ExposedPorts[port] = struct{}{}
	}
	img, err := Image(bin, binary, cfg, p)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, tag, img)
}

// Image makes a one-layer image holding program at /name, owned by root and
// executable, with a fixed timestamp so the same program gives the same
// image digest.
func Image(program []byte, name string, cfg v1.Config, p Platform) (v1.Image, error) {
	layer, err := tarball.LayerFromOpener(func() (ioReadCloser, error) {
		return tarOf(name, program), nil
	}, tarball.WithMediaType(types.DockerLayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "clusterctl bundle build: /" + name, Created: v1.Time{Time: epoch}}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Arch
	cf.Config = cfg
	cf.Created = v1.Time{Time: epoch}
	return mutate.ConfigFile(img, cf)
}

// epoch is the fixed creation time of the images' config and layer.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// buildProgram compiles the embedded program as a static binary in a
// generated module under WorkDir and returns its bytes.
func buildProgram(ctx context.Context, s Spec, src string) ([]byte, error) {
	main, err := sources.ReadFile(src + "/main.go")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.WorkDir, filepath.Base(src))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	gomod := []byte("module clusterctl.build/" + filepath.Base(src) + "\n\ngo 1.22\n")
	if err := bundle.WriteFileAtomic(filepath.Join(dir, "go.mod"), gomod, 0o644); err != nil {
		return nil, err
	}
	if err := bundle.WriteFileAtomic(filepath.Join(dir, "main.go"), main, 0o644); err != nil {
		return nil, err
	}
	out := filepath.Join(dir, filepath.Base(src)+".bin")
	goCmd := s.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+s.Platform.OS, "GOARCH="+s.Platform.Arch, "GOWORK=off", "GOFLAGS=-mod=mod")
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("building the %s program: %w\n%s", s.Kind, err, strings.TrimSpace(output.String()))
	}
	defer os.Remove(out)
	return os.ReadFile(out)
}

// Package ctrimages puts the bundled container images (the pause image, the
// test image) into a host's containerd through the containerd Go client,
// from archives uploaded with the binaries: no registry is ever asked.
//
// Ensure is idempotent and cheap when nothing is missing, so it serves as
// containerd's health probe: it passes only when containerd answers, its CRI
// plugin loaded, and every bundled image is present and unpacked for the
// snapshotter the CRI uses. An image that went missing (deleted by hand,
// garbage-collected by the kubelet) is imported again.
package ctrimages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/platforms"
)

// Namespace is the containerd namespace the CRI plugin (and so the kubelet)
// uses.
const Namespace = "k8s.io"

// ArchiveLabel is set on every imported image to the sha256 of the archive
// it came from, so a changed archive (a new bundle) is imported again.
const ArchiveLabel = "clusterctl.io/archive-sha256"

// Archive is an image archive (Docker or OCI tar) on the host.
type Archive struct {
	Path   string
	SHA256 string // hex digest the archive must have
}

// ParseArchive reads "PATH=SHA256".
func ParseArchive(s string) (Archive, error) {
	p, sum, ok := strings.Cut(s, "=")
	if !ok || p == "" || len(sum) != 64 {
		return Archive{}, fmt.Errorf("archive %q: want PATH=SHA256 (64 hex digits)", s)
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return Archive{}, fmt.Errorf("archive %q: %w", s, err)
	}
	return Archive{Path: p, SHA256: strings.ToLower(sum)}, nil
}

// Options say which containerd and which archives.
type Options struct {
	Socket      string // containerd's gRPC socket
	Snapshotter string // "" means overlayfs, the CRI default
	Archives    []Archive
}

// Result says what Ensure found and did.
type Result struct {
	Present  []string // images already there (names)
	Imported []string // images imported now (names)
}

// Ensure checks containerd and imports the archives whose images are
// missing or not unpacked.
func Ensure(ctx context.Context, o Options) (Result, error) {
	snap := o.Snapshotter
	if snap == "" {
		snap = "overlayfs"
	}
	c, err := containerd.New(o.Socket, containerd.WithDefaultNamespace(Namespace), containerd.WithTimeout(5*time.Second))
	if err != nil {
		return Result{}, fmt.Errorf("connect to containerd at %s: %w", o.Socket, err)
	}
	defer c.Close()
	// gRPC waits for a connection as long as the context lets it.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ok, err := c.IsServing(sctx)
	cancel()
	if err != nil {
		return Result{}, fmt.Errorf("containerd at %s does not answer: %w", o.Socket, err)
	}
	if !ok {
		return Result{}, fmt.Errorf("containerd at %s is not serving yet", o.Socket)
	}
	if err := criLoaded(ctx, c); err != nil {
		return Result{}, err
	}
	var res Result
	var errs []error
	for _, a := range o.Archives {
		names, err := present(ctx, c, a, snap)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(names) > 0 {
			res.Present = append(res.Present, names...)
			continue
		}
		names, err = importArchive(ctx, c, a, snap)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.Imported = append(res.Imported, names...)
	}
	return res, errors.Join(errs...)
}

// criLoaded fails when the CRI plugin did not initialise: containerd then
// runs but the kubelet cannot use it.
func criLoaded(ctx context.Context, c *containerd.Client) error {
	resp, err := c.IntrospectionService().Plugins(ctx, `id==cri`)
	if err != nil {
		return fmt.Errorf("list containerd plugins: %w", err)
	}
	found := false
	for _, p := range resp.Plugins {
		found = true
		if p.InitErr != nil {
			return fmt.Errorf("containerd plugin %s.%s failed to load: %s", p.Type, p.ID, p.InitErr.Message)
		}
	}
	if !found {
		return errors.New("containerd has no CRI plugin (id cri); check its config.toml")
	}
	return nil
}

// present returns the names of the images imported from a, if they are
// all unpacked.
func present(ctx context.Context, c *containerd.Client, a Archive, snap string) ([]string, error) {
	imgs, err := c.ListImages(ctx, `labels."`+ArchiveLabel+`"==`+a.SHA256)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var names []string
	for _, img := range imgs {
		ok, err := img.IsUnpacked(ctx, snap)
		if err != nil || !ok {
			return nil, nil // unpack again by importing again
		}
		names = append(names, img.Name())
	}
	return names, nil
}

// importArchive checks the archive's digest, imports it for this host's
// platform with the archive label, and unpacks it.
func importArchive(ctx context.Context, c *containerd.Client, a Archive, snap string) ([]string, error) {
	f, err := os.Open(a.Path)
	if err != nil {
		return nil, fmt.Errorf("image archive: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("image archive %s: %w", a.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return nil, fmt.Errorf("image archive %s has sha256 %s, want %s: refusing to import it", a.Path, got, a.SHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	ctx, done, err := c.WithLease(ctx)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", a.Path, err)
	}
	defer done(context.WithoutCancel(ctx))
	imgs, err := c.Import(ctx, f,
		containerd.WithImportPlatform(platforms.DefaultStrict()),
		containerd.WithImageLabels(map[string]string{ArchiveLabel: a.SHA256}))
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", a.Path, err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import %s: the archive names no image", a.Path)
	}
	var names []string
	for _, img := range imgs {
		im := containerd.NewImageWithPlatform(c, img, platforms.DefaultStrict())
		if err := im.Unpack(ctx, snap); err != nil {
			return nil, fmt.Errorf("unpack %s from %s: %w", img.Name, a.Path, err)
		}
		names = append(names, img.Name)
	}
	return names, nil
}

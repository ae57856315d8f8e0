package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/clusterctl/clusterctl/lab"
)

// mirrorPort is the test-image registry's port on the lab bridge. It is
// fixed so that the spec's registry block, and with it the nodes'
// containerd configuration, stays the same from one run to the next.
const mirrorPort = "5000"

// serveImages serves the assembled images from a registry on the lab's
// bridge address, for as long as the run lasts, and returns its URL. The
// images are on every node already (image blocks); the registry is there
// for the tests that pull with imagePullPolicy Always (the PodCertificate
// mTLS tests, among others): containerd asks a registry for the manifest
// even when it holds the image. The nodes reach it as a mirror of
// "localhost", the registry every test image reference names
// (KUBE_TEST_REPO_LIST). An image that was not assembled is not in it, so
// its pull still fails; nothing reaches past the lab.
func serveImages(ctx context.Context, labDir string, imgs []image) (mirror string, stop func(), err error) {
	l, err := lab.Open(labDir, nil)
	if err != nil {
		return "", nil, fmt.Errorf("test-image registry: open the lab in %s: %w", labDir, err)
	}
	addr := net.JoinHostPort(l.BridgeAddress().String(), mirrorPort)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("test-image registry: listen on %s (another run still going?): %w", addr, err)
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(ln)
	stop = func() { srv.Close() }
	for _, img := range imgs {
		if err := pushArchive(ctx, addr, img); err != nil {
			stop()
			return "", nil, err
		}
	}
	return "http://" + addr, stop, nil
}

// pushArchive uploads one image archive under its reference's path with
// the registry API's monolithic uploads: each layer and the config as a
// blob, then the manifest under the tag.
func pushArchive(ctx context.Context, addr string, img image) error {
	path, ok := strings.CutPrefix(img.ref, "localhost/")
	repo, tag, ok2 := strings.Cut(path, ":")
	if !ok || !ok2 {
		return fmt.Errorf("test-image registry: %s is not a localhost/NAME:TAG reference", img.ref)
	}
	fail := func(err error) error { return fmt.Errorf("test-image registry: push %s: %w", img.ref, err) }
	v, err := tarball.ImageFromPath(img.file, nil)
	if err != nil {
		return fail(err)
	}
	base := "http://" + addr + "/v2/" + repo
	layers, err := v.Layers()
	if err != nil {
		return fail(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return fail(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fail(err)
		}
		if err := putBlob(ctx, base, data); err != nil {
			return fail(err)
		}
	}
	cfg, err := v.RawConfigFile()
	if err != nil {
		return fail(err)
	}
	if err := putBlob(ctx, base, cfg); err != nil {
		return fail(err)
	}
	manifest, err := v.RawManifest()
	if err != nil {
		return fail(err)
	}
	mt, err := v.MediaType()
	if err != nil {
		return fail(err)
	}
	if _, err := call(ctx, http.MethodPut, base+"/manifests/"+tag, string(mt), manifest); err != nil {
		return fail(err)
	}
	return nil
}

func putBlob(ctx context.Context, base string, data []byte) error {
	resp, err := call(ctx, http.MethodPost, base+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		u, _ := url.Parse(base)
		loc = u.Scheme + "://" + u.Host + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	sum := sha256.Sum256(data)
	_, err = call(ctx, http.MethodPut, loc+sep+"digest=sha256:"+hex.EncodeToString(sum[:]), "application/octet-stream", data)
	return err
}

func call(ctx context.Context, method, url, ctype string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %s %s", method, url, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

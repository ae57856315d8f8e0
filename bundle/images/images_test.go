package images

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/clusterctl/clusterctl/bundle"
)

// writeImage writes an image archive and returns its path.
func writeImage(t *testing.T, kind, ref string) string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, kind+".tar")
	s := Spec{Kind: kind, Ref: ref, Platform: Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}, WorkDir: filepath.Join(dir, "work")}
	if err := Write(context.Background(), s, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// archiveTags reads the docker-archive manifest.json: what `ctr images
// import` names the image.
func archiveTags(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s has no manifest.json: %v", path, err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 {
			t.Fatalf("manifest.json lists %d images, want 1", len(m))
		}
		return m[0].RepoTags
	}
}

// extractProgram loads the image from the archive and copies the file at
// /name out of its only layer.
func extractProgram(t *testing.T, path, ref, file string) (string, []string) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != runtime.GOOS || cf.Architecture != runtime.GOARCH {
		t.Errorf("image platform %s/%s, want %s/%s", cf.OS, cf.Architecture, runtime.GOOS, runtime.GOARCH)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want one", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("layer has no %s: %v", file, err)
		}
		if h.Name != file {
			continue
		}
		if h.Mode&0o111 == 0 {
			t.Errorf("%s mode %o is not executable", file, h.Mode)
		}
		out := filepath.Join(t.TempDir(), file)
		f, _ := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o755)
		io.Copy(f, tr)
		f.Close()
		return out, cf.Config.Entrypoint
	}
}

func TestEchoImageAnswersOnItsPort(t *testing.T) {
	ref := bundle.EchoImageRepo + ":v1"
	path := writeImage(t, bundle.EchoImage, ref)
	if tags := archiveTags(t, path); len(tags) != 1 || tags[0] != ref {
		t.Errorf("archive tags %v, want [%s]", tags, ref)
	}
	bin, entry := extractProgram(t, path, ref, "echo")
	if len(entry) != 1 || entry[0] != "/echo" {
		t.Errorf("entrypoint %v, want [/echo]", entry)
	}

	// Run the program from the image on a free loopback port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin)
	cmd.Env = []string{"PORT=" + strconv.Itoa(port), "POD_IP=10.244.9.9"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/hello"
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err = http.Get(url); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("echo never answered: %v", err)
	}
	defer resp.Body.Close()
	var got struct {
		Hostname string `json:"hostname"`
		PodIP    string `json:"pod_ip"`
		Client   string `json:"client"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if got.Hostname != host || got.PodIP != "10.244.9.9" {
		t.Errorf("answer %+v, want hostname %s and pod_ip 10.244.9.9", got, host)
	}
	if h, _, err := net.SplitHostPort(got.Client); err != nil || h != "127.0.0.1" {
		t.Errorf("client %q, want 127.0.0.1:PORT", got.Client)
	}

	// The kubelet stops a pod with SIGTERM: echo exits 0.
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("echo after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("echo ignored SIGTERM")
	}
}

func TestPauseImageWaitsForSignal(t *testing.T) {
	ref := bundle.PauseImageRepo + ":3.10"
	path := writeImage(t, bundle.PauseImage, ref)
	if tags := archiveTags(t, path); len(tags) != 1 || tags[0] != ref {
		t.Errorf("archive tags %v, want [%s]", tags, ref)
	}
	bin, entry := extractProgram(t, path, ref, "pause")
	if len(entry) != 1 || entry[0] != "/pause" {
		t.Errorf("entrypoint %v, want [/pause]", entry)
	}
	cmd := exec.Command(bin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("pause exited on its own: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pause after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("pause ignored SIGTERM")
	}
}

func TestImagesAreReproducible(t *testing.T) {
	ref := bundle.PauseImageRepo + ":3.10"
	a, _ := os.ReadFile(writeImage(t, bundle.PauseImage, ref))
	b, _ := os.ReadFile(writeImage(t, bundle.PauseImage, ref))
	if string(a) != string(b) {
		t.Error("two builds of the pause image differ")
	}
}

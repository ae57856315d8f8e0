package ctrimages

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/clusterctl/clusterctl/bundle"
)

func TestParseArchive(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	a, err := ParseArchive("/x/pause.tar=" + strings.ToUpper(sum))
	if err != nil || a.Path != "/x/pause.tar" || a.SHA256 != sum {
		t.Errorf("ParseArchive: %+v %v", a, err)
	}
	for _, bad := range []string{"/x/pause.tar", "/x/pause.tar=abc", "=" + sum, "/x=" + strings.Repeat("zz", 32)} {
		if _, err := ParseArchive(bad); err == nil {
			t.Errorf("ParseArchive(%q) accepted", bad)
		}
	}
}

// needBundle skips without root or the bundle, unless CI requires it.
func needBundle(t *testing.T, component, version string) (*bundle.Cache, bundle.Platform) {
	t.Helper()
	must := os.Getenv("CLUSTERCTL_REQUIRE_BUNDLE") == "1"
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	c, err := bundle.DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	p := bundle.HostPlatform()
	if _, err := c.ReadManifest(component, version, p); err != nil {
		if must {
			t.Fatalf("%v (CLUSTERCTL_REQUIRE_BUNDLE=1)", err)
		}
		t.Skipf("%v: run `make bundle`", err)
	}
	return c, p
}

// startContainerd runs the bundled containerd on a private root, state
// and socket, and stops it at the end of the test.
func startContainerd(t *testing.T, c *bundle.Cache, p bundle.Platform) string {
	t.Helper()
	r := bundle.Latest()
	bin, _, err := c.Lookup(bundle.Containerd, r.Containerd, p, "containerd")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "ctrimages-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Snapshots are overlay mounts only while containers run; none do.
		os.RemoveAll(dir)
	})
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf("version = 3\nroot = %q\nstate = %q\n[grpc]\n  address = %q\n[plugins.'io.containerd.grpc.v1.cri']\n  disable_tcp_service = true\n  stream_server_address = '127.0.0.1'\n  stream_server_port = '0'\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("containerd did not listen on %s:\n%s", sock, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Against a real containerd: the first Ensure imports and unpacks the
// bundled images, the second finds them, a deleted image is imported again,
// and an archive whose digest does not match is refused.
func TestEnsureWithContainerd(t *testing.T) {
	c, p := needBundle(t, bundle.Containerd, bundle.Latest().Containerd)
	r := bundle.Latest()
	var archives []Archive
	for _, img := range []struct{ comp, version, file string }{
		{bundle.PauseImage, r.Pause, "pause.tar"}, {bundle.EchoImage, r.Echo, "echo.tar"},
	} {
		path, sum, err := c.Lookup(img.comp, img.version, p, img.file)
		if err != nil {
			t.Skipf("%v: run `make bundle`", err)
		}
		archives = append(archives, Archive{Path: path, SHA256: sum})
	}
	sock := startContainerd(t, c, p)
	ctx := context.Background()
	o := Options{Socket: sock, Archives: archives}

	res, err := Ensure(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{bundle.PauseImageRepo + ":" + r.Pause, bundle.EchoImageRepo + ":" + r.Echo}
	if strings.Join(res.Imported, ",") != strings.Join(want, ",") || len(res.Present) != 0 {
		t.Fatalf("first Ensure: %+v, want %v imported", res, want)
	}
	res, err = Ensure(ctx, o)
	if err != nil || len(res.Imported) != 0 || len(res.Present) != 2 {
		t.Fatalf("second Ensure: %+v %v, want both present and nothing imported", res, err)
	}

	cl, err := containerd.New(sock, containerd.WithDefaultNamespace(Namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ImageService().Delete(ctx, want[1]); err != nil {
		t.Fatal(err)
	}
	res, err = Ensure(ctx, o)
	if err != nil || strings.Join(res.Imported, ",") != want[1] {
		t.Fatalf("Ensure after deleting %s: %+v %v", want[1], res, err)
	}
	img, err := cl.GetImage(ctx, want[1])
	if err != nil {
		t.Fatal(err)
	}
	if img.Labels()[ArchiveLabel] != archives[1].SHA256 {
		t.Errorf("image labels %v, want %s=%s", img.Labels(), ArchiveLabel, archives[1].SHA256)
	}

	bad := Options{Socket: sock, Archives: []Archive{{Path: archives[0].Path, SHA256: strings.Repeat("0", 64)}}}
	if _, err := Ensure(ctx, bad); err == nil || !strings.Contains(err.Error(), "refusing to import") {
		t.Errorf("Ensure with a wrong digest: %v", err)
	}
}

func TestEnsureNoContainerd(t *testing.T) {
	_, err := Ensure(context.Background(), Options{Socket: filepath.Join(t.TempDir(), "none.sock")})
	if err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("Ensure without containerd: %v", err)
	}
}

package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
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

// image is one test image: made here (file set) or not available (why).
type image struct {
	ref  string // as the suite names it through repo-list.yaml
	file string
	why  string
}

// The base of the images made here: Debian's static busybox (sh and the
// usual tools) and the tools upstream's agnhost image carries that the
// tests run in it — dig and getent (the DNS probes), curl, netcat-openbsd's
// nc (the Service checks pass it -v -t), ip and bash — with the shared
// libraries they load, and the few files in /etc they read. Installed with
// apt-get on this machine when missing.
var basePackages = []string{"busybox-static", "bind9-dnsutils", "libc-bin", "curl", "netcat-openbsd", "iproute2", "bash", "libpcre2-8-0", "libssl3", "zlib1g"}

// baseTools are the dynamically linked tools of the base: path on this
// machine and in the image. A tool replaces busybox's applet of its name.
var baseTools = [][2]string{
	{"/usr/bin/dig", "/usr/bin/dig"},
	{"/usr/bin/getent", "/usr/bin/getent"},
	{"/usr/bin/curl", "/usr/bin/curl"},
	{"/usr/bin/nc.openbsd", "/usr/bin/nc"},
	{"/usr/bin/ip", "/usr/bin/ip"},
	{"/usr/bin/ss", "/usr/bin/ss"},
	{"/usr/bin/bash", "/bin/bash"},
}

// makeImages writes the archives of the suite's images that can be built
// offline into dir and lists the others.
func makeImages(ctx context.Context, dir, tools, k8sVersion string) (made, missing []image, err error) {
	agnhost := filepath.Join(tools, "agnhost")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	if err := ensurePackages(ctx); err != nil {
		return nil, nil, err
	}
	base, err := baseFiles()
	if err != nil {
		return nil, nil, err
	}
	cache := &bundle.Cache{Root: filepath.Join(cacheDir(), "artifacts")}
	p := bundle.HostPlatform()
	rel, err := bundle.ReleaseFor(k8sVersion)
	if err != nil {
		return nil, nil, err
	}
	etcdBin, _, err := cache.Lookup(bundle.Etcd, rel.Etcd, p, "etcd")
	if err != nil {
		return nil, nil, err
	}
	pauseTar, _, err := cache.Lookup(bundle.PauseImage, rel.Pause, p, "pause.tar")
	if err != nil {
		return nil, nil, err
	}
	write := func(ref string, files []layerFile, cfg v1.Config) error {
		f := filepath.Join(dir, strings.NewReplacer("/", "-", ":", "-").Replace(strings.TrimPrefix(ref, "localhost/e2e/"))+".tar")
		made = append(made, image{ref: ref, file: f})
		return writeImage(f, ref, files, cfg)
	}
	agn, err := agnhostFiles(agnhost, k8sVersion)
	if err != nil {
		return nil, nil, err
	}
	if err := write("localhost/e2e/agnhost:2.66.1", append(base, agn...), v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}); err != nil {
		return nil, nil, err
	}
	// The StatefulSet and Deployment tests roll pods from the previous
	// agnhost to the current one: they need two image references running
	// agnhost. The previous release's source is not in this module, so
	// agnhost:2.55 is this release's agnhost under the old tag.
	if err := write("localhost/e2e/agnhost:2.55", append(base, agn...), v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}); err != nil {
		return nil, nil, err
	}
	envsh, err := fileOf(filepath.Join(tools, "envsh"), "/bin/sh", 0o755)
	if err != nil {
		return nil, nil, err
	}
	if err := write("localhost/e2e/busybox:1.37.0-2", append(slices.Clip(base), envsh), v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}); err != nil {
		return nil, nil, err
	}
	// Debian bookworm's dig, as upstream's (bookworm-slim and dnsutils):
	// the DNS tests' glibc querier.
	if err := write("localhost/e2e/glibc-dns-testing:2.1.1", base, v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}); err != nil {
		return nil, nil, err
	}
	etcd, err := fileOf(etcdBin, "/usr/local/bin/etcd", 0o755)
	if err != nil {
		return nil, nil, err
	}
	if err := write("localhost/e2e/etcd:3.7.0-0", append(base, etcd), v1.Config{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}); err != nil {
		return nil, nil, err
	}
	// The aggregation test's API server, built from k8s.io/sample-apiserver
	// at this release (the suite's tag names an older build of the same
	// program); its etcd sidecar is the etcd image above.
	sample, err := fileOf(filepath.Join(tools, "sample-apiserver"), "/sample-apiserver", 0o755)
	if err != nil {
		return nil, nil, err
	}
	if err := write("localhost/e2e/sample-apiserver:1.29.2", append(base, sample), v1.Config{Entrypoint: []string{"/sample-apiserver"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}); err != nil {
		return nil, nil, err
	}
	// The bundle's pause image under the suite's name.
	pause := filepath.Join(dir, "pause-3.10.2.tar")
	if err := retag(pauseTar, "localhost/e2e/pause:3.10.2", pause); err != nil {
		return nil, nil, err
	}
	made = append(made, image{ref: "localhost/e2e/pause:3.10.2", file: pause})

	// kitten and nautilus (kubectl's Update Demo): agnhost's test-webserver
	// serving the picture and data.json of the same folder upstream builds
	// them from, at /.
	for _, pic := range []string{"kitten", "nautilus"} {
		html, err := moduleDir(k8sVersion, "test", "images", pic, "html")
		if err != nil {
			return nil, nil, err
		}
		files := append(append([]layerFile{}, base...), agn...)
		for _, f := range []string{pic + ".jpg", "data.json"} {
			lf, err := fileOf(filepath.Join(html, f), "/"+f, 0o644)
			if err != nil {
				return nil, nil, err
			}
			files = append(files, lf)
		}
		if err := write("localhost/e2e/"+pic+":1.8", files, v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"test-webserver"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}); err != nil {
			return nil, nil, err
		}
	}
	// nonewprivs: upstream's nnp program, set-uid root, which prints its
	// effective uid (the AllowPrivilegeEscalation tests).
	nnp, err := fileOf(filepath.Join(tools, "nnp"), "/usr/local/bin/nnp", os.ModeSetuid|0o755)
	if err != nil {
		return nil, nil, err
	}
	if err := write("localhost/e2e/nonewprivs:1.4", append(base, nnp), v1.Config{Cmd: []string{"nnp"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}); err != nil {
		return nil, nil, err
	}
	// nonroot: the base with user 1234, as upstream's.
	if err := write("localhost/e2e/nonroot:1.5", base, v1.Config{User: "1234", Cmd: []string{"sh"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"}}); err != nil {
		return nil, nil, err
	}
	// nginx: Debian's nginx (its package unpacked, never installed here, so
	// no nginx runs on this machine) serving a page on port 80 in the
	// foreground, like the upstream image. Two tags, as the suite names two.
	ngx, err := nginxFiles(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	for _, ref := range []string{"localhost/e2e/nginx:1.27.0-2", "localhost/e2e/nginx:1.28.0-2"} {
		if err := write(ref, append(append([]layerFile{}, base...), ngx...), v1.Config{Cmd: []string{"nginx", "-g", "daemon off;"}, Env: []string{"PATH=/usr/local/sbin:/usr/sbin:/usr/local/bin:/usr/bin:/bin"}, ExposedPorts: map[string]struct{}{"80/tcp": {}}}); err != nil {
			return nil, nil, err
		}
	}

	for _, m := range []struct{ ref, why string }{
		{"regression-issue-74839, resource-consumer, ipc-utils, perl, apparmor-loader, distroless-iptables, volume/*", "not assembled here (no [Conformance] test uses them)"},
	} {
		missing = append(missing, image{ref: m.ref, why: m.why})
	}
	return made, missing, nil
}

// agnhostFiles are what upstream's agnhost Dockerfile adds to its base:
// the binary (and agnhost-2, for the entrypoint tests), porter's TLS pair,
// netexec's /uploads. Its users are in the base's /etc/passwd.
func agnhostFiles(bin, k8sVersion string) ([]layerFile, error) {
	agn, err := fileOf(bin, "/agnhost", 0o755)
	if err != nil {
		return nil, err
	}
	// Its /bin/sh is bash: Debian's static busybox shell runs its own
	// applets before PATH (its nc has no -v), and the tests' shell lines in
	// agnhost want the real tools. The busybox image keeps busybox's sh,
	// whose messages the tests of that image expect.
	out := []layerFile{agn, {path: "/agnhost-2", link: "agnhost"}, {path: "/uploads", dir: true, mode: 0o755}, {path: "/bin/sh", link: "/bin/bash"}}
	porter, err := moduleDir(k8sVersion, "test", "images", "agnhost", "porter")
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		lf, err := fileOf(filepath.Join(porter, f), "/"+f, 0o644)
		if err != nil {
			return nil, err
		}
		out = append(out, lf)
	}
	return out, nil
}

// moduleDir is a folder of k8s.io/kubernetes at the release in the Go
// module cache (the bundle's build downloaded it).
func moduleDir(k8sVersion string, elem ...string) (string, error) {
	cache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMODCACHE: %w", err)
	}
	return filepath.Join(append([]string{strings.TrimSpace(string(cache)), "k8s.io", "kubernetes@v" + k8sVersion}, elem...)...), nil
}

// nginxFiles are Debian's nginx binary with the libraries it loads, a
// configuration that serves /usr/share/nginx/html on port 80 and logs to
// the container's output, and the folders it writes.
func nginxFiles(ctx context.Context, work string) ([]layerFile, error) {
	deb := filepath.Join(work, "nginx-deb")
	bin := filepath.Join(deb, "usr", "sbin", "nginx")
	if _, err := os.Stat(bin); err != nil {
		if err := os.MkdirAll(deb, 0o755); err != nil {
			return nil, err
		}
		if err := sh(ctx, deb, nil, "apt-get", "download", "-qq", "nginx"); err != nil {
			return nil, err
		}
		debs, _ := filepath.Glob(filepath.Join(deb, "nginx_*.deb"))
		if len(debs) != 1 {
			return nil, fmt.Errorf("apt-get download nginx: want one nginx_*.deb in %s, found %d", deb, len(debs))
		}
		if err := sh(ctx, "", nil, "dpkg-deb", "-x", debs[0], deb); err != nil {
			return nil, err
		}
	}
	ngx, err := fileOf(bin, "/usr/sbin/nginx", 0o755)
	if err != nil {
		return nil, err
	}
	libs, err := libraries(bin)
	if err != nil {
		return nil, err
	}
	out := append([]layerFile{ngx}, libs...)
	for _, d := range []string{"/etc/nginx", "/usr/share/nginx", "/usr/share/nginx/html", "/var/log/nginx", "/var/lib/nginx", "/var/lib/nginx/body", "/run"} {
		out = append(out, layerFile{path: d, dir: true, mode: 0o755})
	}
	conf := "user nobody nogroup;\nworker_processes 1;\npid /run/nginx.pid;\nerror_log /dev/stderr;\n" +
		"events { worker_connections 256; }\n" +
		"http {\n  access_log /dev/stdout;\n  default_type text/html;\n" +
		"  server {\n    listen 80;\n    root /usr/share/nginx/html;\n    index index.html;\n  }\n}\n"
	page := "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>\n"
	return append(out,
		layerFile{path: "/etc/nginx/nginx.conf", data: []byte(conf), mode: 0o644},
		layerFile{path: "/usr/share/nginx/html/index.html", data: []byte(page), mode: 0o644}), nil
}

// libraries are the shared libraries (and the dynamic loader) a program
// loads, at their paths, as ldd names them.
func libraries(bins ...string) ([]layerFile, error) {
	libs := map[string]bool{}
	for _, b := range bins {
		ldd, err := exec.Command("ldd", b).Output()
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", b, err)
		}
		for _, line := range strings.Split(string(ldd), "\n") {
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") {
					libs[f] = true
				}
			}
		}
	}
	var out []layerFile
	dirs := map[string]bool{}
	for _, l := range sortedKeys(libs) {
		d := path.Dir(l)
		if !dirs[d] && d != "/lib" && d != "/lib64" {
			dirs[d] = true
			out = append(out, layerFile{path: d, dir: true, mode: 0o755})
		}
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return nil, err
		}
		f, err := fileOf(real, l, 0o755)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// imageBlocks is the spec file that puts the archives on every node.
func imageBlocks(imgs []image, mirror string) []byte {
	var b strings.Builder
	b.WriteString("# Written by test/conformance: the suite's images, on every node, and the\n")
	b.WriteString("# run's registry of the same images as the mirror of every test image reference.\n")
	fmt.Fprintf(&b, "\nregistry \"localhost\" {\n  mirrors = [%q]\n}\n", mirror)
	for _, img := range imgs {
		label := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.TrimSuffix(filepath.Base(img.file), ".tar"), "-"), "-")
		fmt.Fprintf(&b, "\nimage %q {\n  archive = %q\n}\n", "e2e-"+label, img.file)
	}
	return []byte(b.String())
}

func ensurePackages(ctx context.Context) error {
	var need []string
	for _, p := range basePackages {
		if exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Run() != nil {
			need = append(need, p)
		}
	}
	if len(need) == 0 {
		return nil
	}
	fmt.Printf("  apt-get install %s\n", strings.Join(need, " "))
	if err := sh(ctx, "", []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", "update", "-qq"); err != nil {
		return err
	}
	return sh(ctx, "", []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", append([]string{"install", "-y", "-qq"}, need...)...)
}

// layerFile is one entry of an image layer.
type layerFile struct {
	path string // absolute, in the image
	data []byte
	mode os.FileMode
	link string // a symlink's target
	dir  bool
}

func fileOf(local, dst string, mode os.FileMode) (layerFile, error) {
	b, err := os.ReadFile(local)
	return layerFile{path: dst, data: b, mode: mode}, err
}

// baseFiles: busybox with a link per applet, dig and getent with their
// libraries and the dynamic loader, and /etc basics.
func baseFiles() ([]layerFile, error) {
	var out []layerFile
	for _, d := range []string{"/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/usr/local", "/usr/local/bin", "/lib", "/lib64", "/etc", "/root", "/var", "/var/run"} {
		out = append(out, layerFile{path: d, dir: true, mode: 0o755})
	}
	out = append(out, layerFile{path: "/tmp", dir: true, mode: os.ModeSticky | 0o777})
	bb, err := fileOf("/bin/busybox", "/bin/busybox", 0o755)
	if err != nil {
		return nil, err
	}
	out = append(out, bb)
	list, err := exec.Command("/bin/busybox", "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	have := map[string]bool{"/bin/busybox": true}
	for _, t := range baseTools {
		have[t[1]] = true
		// busybox lists applets under both /bin and /usr/bin.
		have["/bin/"+path.Base(t[1])], have["/usr/bin/"+path.Base(t[1])], have["/sbin/"+path.Base(t[1])] = true, true, true
	}
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		p := "/" + strings.TrimSpace(sc.Text())
		if p == "/" || have[p] {
			continue
		}
		have[p] = true
		out = append(out, layerFile{path: p, link: "/bin/busybox"})
		// Upstream's busybox image has every applet in /bin (/bin/sysctl).
		if b := "/bin/" + path.Base(p); !have[b] {
			have[b] = true
			out = append(out, layerFile{path: b, link: "/bin/busybox"})
		}
	}
	var reals []string
	for _, t := range baseTools {
		real, err := filepath.EvalSymlinks(t[0])
		if err != nil {
			return nil, err
		}
		f, err := fileOf(real, t[1], 0o755)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
		reals = append(reals, real)
	}
	libs, err := libraries(reals...)
	if err != nil {
		return nil, err
	}
	out = append(out, libs...)
	etc := map[string]string{
		"/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
		// user-defined-in-image and group-defined-in-image: agnhost's, for
		// the SupplementalGroups tests.
		"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
			"user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n",
		"/etc/group": "root:x:0:\nnogroup:x:65534:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n",
	}
	for _, p := range sortedKeys(etc) {
		out = append(out, layerFile{path: p, data: []byte(etc[p]), mode: 0o644})
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// writeImage writes a one-layer docker archive named ref.
func writeImage(out, ref string, files []layerFile, cfg v1.Config) error {
	tag, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return err
	}
	// A later entry for a path replaces an earlier one (agnhost's /bin/sh).
	last := map[string]int{}
	for i, f := range files {
		last[f.path] = i
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, f := range files {
		if last[f.path] != i {
			continue
		}
		h := &tar.Header{Name: strings.TrimPrefix(f.path, "/"), ModTime: epoch, Format: tar.FormatPAX, Mode: int64(f.mode.Perm())}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			if f.mode&os.ModeSticky != 0 {
				h.Mode |= 0o1000
			}
		case f.mode&os.ModeSetuid != 0:
			h.Typeflag, h.Size, h.Mode = tar.TypeReg, int64(len(f.data)), h.Mode|0o4000
		case f.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.link, 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, tarball.WithMediaType(types.DockerLayer))
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	p := bundle.HostPlatform()
	cf.OS, cf.Architecture, cf.Config, cf.Created = p.OS, p.Arch, cfg, v1.Time{Time: epoch}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, tag, img)
}

// retag writes the image of an archive under another name.
func retag(src, ref, out string) error {
	img, err := tarball.ImageFromPath(src, nil)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, tag, img)
}

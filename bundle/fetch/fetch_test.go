package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
)

var linux = bundle.Platform{OS: "linux", Arch: "amd64"}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// server serves files by path, records every request's Range header, and can
// cut the first response of a path after some bytes or ignore Range.
type server struct {
	mu          sync.Mutex
	files       map[string][]byte
	cutFirstAt  map[string]int // path -> bytes sent before the connection dies (first request only)
	ignoreRange bool
	ranges      []string // Range header of each request, "" when none
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	data, ok := s.files[r.URL.Path]
	cut, cutNow := s.cutFirstAt[r.URL.Path]
	delete(s.cutFirstAt, r.URL.Path)
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	ignore := s.ignoreRange
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if cutNow {
		// Promise the whole file, send part of it, then drop the
		// connection: the client sees an unexpected EOF.
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	if ignore {
		r.Header.Del("Range")
	}
	http.ServeContent(w, r, "", time.Unix(0, 0), bytes.NewReader(data))
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func newFetcher(t *testing.T) *Fetcher {
	return &Fetcher{Cache: &bundle.Cache{Root: t.TempDir()}, Platform: linux}
}

// leftovers lists every file in an artifact folder.
func leftovers(t *testing.T, c *bundle.Cache, a bundle.Artifact) []string {
	entries, _ := os.ReadDir(c.Dir(a.Component, a.Version, linux))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

var kubelet = bundle.Artifact{Component: bundle.Kubelet, Version: "1.37.2", Files: []string{"kubelet"}}

func rawSource(url string) Source {
	return Source{Component: kubelet.Component, Version: kubelet.Version, URL: url + "/release/v{version}/bin/{os}/{arch}/kubelet", Format: Raw}
}

func TestFetchRawVerifiedAndCached(t *testing.T) {
	body := bytes.Repeat([]byte("kubelet!"), 10000)
	srv := &server{files: map[string][]byte{"/release/v1.37.2/bin/linux/amd64/kubelet": body}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f := newFetcher(t)
	src := rawSource(ts.URL)
	src.SHA256 = map[string]string{"linux/amd64": sum(body)}

	r, err := f.Fetch(context.Background(), kubelet, src, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Reused {
		t.Error("first fetch says reused")
	}
	path, got, err := f.Cache.Lookup(kubelet.Component, kubelet.Version, linux, "kubelet")
	if err != nil {
		t.Fatal(err)
	}
	if got != sum(body) {
		t.Errorf("cached sha256 %s, want %s", got, sum(body))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o755 {
		t.Errorf("cached file mode %v, want 0755", st.Mode())
	}
	if !strings.Contains(r.Manifest.Source, "/release/v1.37.2/bin/linux/amd64/kubelet") {
		t.Errorf("manifest source %q does not name the URL", r.Manifest.Source)
	}

	// A second fetch reuses the verified copy without a request.
	n := len(srv.requests())
	r, err = f.Fetch(context.Background(), kubelet, src, "")
	if err != nil || !r.Reused {
		t.Fatalf("second fetch: reused=%v err=%v", r.Reused, err)
	}
	if len(srv.requests()) != n {
		t.Error("second fetch downloaded again")
	}
}

func TestFetchWrongChecksumCachesNothing(t *testing.T) {
	body := []byte("this is not the kubelet you pinned")
	srv := &server{files: map[string][]byte{"/release/v1.37.2/bin/linux/amd64/kubelet": body}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f := newFetcher(t)
	src := rawSource(ts.URL)
	src.SHA256 = map[string]string{"linux/amd64": sum([]byte("the real kubelet"))}

	_, err := f.Fetch(context.Background(), kubelet, src, "")
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("fetch with a wrong checksum: %v, want ErrChecksum", err)
	}
	if _, _, err := f.Cache.Lookup(kubelet.Component, kubelet.Version, linux, "kubelet"); !errors.Is(err, bundle.ErrNotCached) {
		t.Errorf("after a checksum mismatch the artifact is cached: %v", err)
	}
	if files := leftovers(t, f.Cache, kubelet); len(files) != 0 {
		t.Errorf("files left after a checksum mismatch: %v", files)
	}
}

func TestFetchRefusesWithoutChecksum(t *testing.T) {
	srv := &server{files: map[string][]byte{}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f := newFetcher(t)
	_, err := f.Fetch(context.Background(), kubelet, rawSource(ts.URL), "")
	if !errors.Is(err, ErrNoChecksum) {
		t.Fatalf("fetch without a pinned sha256: %v, want ErrNoChecksum", err)
	}
	if !strings.Contains(err.Error(), "--sha256 kubelet=") || !strings.Contains(err.Error(), "bundle build") {
		t.Errorf("error does not say what to do: %v", err)
	}
	if len(srv.requests()) != 0 {
		t.Error("downloaded although no checksum was pinned")
	}
}

func TestFetchResumesInterruptedDownload(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	path := "/release/v1.37.2/bin/linux/amd64/kubelet"
	srv := &server{files: map[string][]byte{path: body}, cutFirstAt: map[string]int{path: 300 << 10}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f := newFetcher(t)

	// The override sum (as from --sha256) stands in for an unpinned source.
	_, err := f.Fetch(context.Background(), kubelet, rawSource(ts.URL), sum(body))
	if err != nil {
		t.Fatal(err)
	}
	reqs := srv.requests()
	if len(reqs) != 2 || reqs[0] != "" || !strings.HasPrefix(reqs[1], "bytes=") || reqs[1] == "bytes=0-" {
		t.Errorf("requests' Range headers = %q, want a full request then a resume", reqs)
	}
	_, got, err := f.Cache.Lookup(kubelet.Component, kubelet.Version, linux, "kubelet")
	if err != nil || got != sum(body) {
		t.Errorf("after resume: sha256 %s, err %v", got, err)
	}
	if files := leftovers(t, f.Cache, kubelet); strings.Join(files, ",") != "kubelet,manifest.json" {
		t.Errorf("artifact folder holds %v, want only kubelet and its manifest", files)
	}
}

func TestFetchRestartsWhenServerCannotResume(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 200<<10)
	path := "/release/v1.37.2/bin/linux/amd64/kubelet"
	srv := &server{files: map[string][]byte{path: body}, cutFirstAt: map[string]int{path: 50 << 10}, ignoreRange: true}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f := newFetcher(t)
	if _, err := f.Fetch(context.Background(), kubelet, rawSource(ts.URL), sum(body)); err != nil {
		t.Fatal(err)
	}
	_, got, err := f.Cache.Lookup(kubelet.Component, kubelet.Version, linux, "kubelet")
	if err != nil || got != sum(body) {
		t.Errorf("after restart: sha256 %s, err %v (a 200 answer to a Range request must replace, not append)", got, err)
	}
}

func TestFetchInterruptedRunLeavesNothingCached(t *testing.T) {
	body := bytes.Repeat([]byte("y"), 100<<10)
	path := "/release/v1.37.2/bin/linux/amd64/kubelet"
	srv := &server{files: map[string][]byte{path: body}, cutFirstAt: map[string]int{path: 10 << 10}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f := newFetcher(t)
	f.Attempts = 1 // as if the process died after the first cut

	if _, err := f.Fetch(context.Background(), kubelet, rawSource(ts.URL), sum(body)); err == nil {
		t.Fatal("a cut download succeeded")
	}
	if _, _, err := f.Cache.Lookup(kubelet.Component, kubelet.Version, linux, "kubelet"); !errors.Is(err, bundle.ErrNotCached) {
		t.Errorf("half a download counts as cached: %v", err)
	}
	// The next run resumes the partial file rather than starting over.
	if _, err := f.Fetch(context.Background(), kubelet, rawSource(ts.URL), sum(body)); err != nil {
		t.Fatal(err)
	}
	if reqs := srv.requests(); len(reqs) != 2 || reqs[1] != "bytes=10240-" {
		t.Errorf("Range headers = %q, want the second run to resume at byte 10240", reqs)
	}
}

func TestFetchTarGzExtractsMembers(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	files := map[string]string{
		"etcd-v3.7.3-linux-amd64/etcd":      "etcd server",
		"etcd-v3.7.3-linux-amd64/etcdctl":   "etcd client",
		"etcd-v3.7.3-linux-amd64/README.md": "docs",
	}
	for name, content := range files {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write([]byte(content))
	}
	tw.Close()
	zw.Close()
	archive := buf.Bytes()

	etcd := bundle.Artifact{Component: bundle.Etcd, Version: "3.7.3", Files: []string{"etcd", "etcdctl"}}
	src, ok := upstreamFor(etcd)
	if !ok {
		t.Fatal("no upstream source for etcd")
	}
	srv := &server{files: map[string][]byte{"/etcd-io/etcd/releases/download/v3.7.3/etcd-v3.7.3-linux-amd64.tar.gz": archive}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	src.URL = strings.Replace(src.URL, "https://github.com", ts.URL, 1)
	f := newFetcher(t)
	if _, err := f.Fetch(context.Background(), etcd, src, sum(archive)); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"etcd": "etcd server", "etcdctl": "etcd client"} {
		path, _, err := f.Cache.Lookup(etcd.Component, etcd.Version, linux, file)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(f.Cache.Dir(etcd.Component, etcd.Version, linux), "README.md")); err == nil {
		t.Error("an unwanted archive member was extracted")
	}

	// An archive that lacks a member is refused and nothing is cached.
	missing := bundle.Artifact{Component: bundle.Etcd, Version: "3.7.3", Files: []string{"etcd", "etcdctl", "etcdutl"}}
	src.Members["etcdutl"] = "etcd-v{version}-{os}-{arch}/etcdutl"
	f2 := newFetcher(t)
	if _, err := f2.Fetch(context.Background(), missing, src, sum(archive)); err == nil || !strings.Contains(err.Error(), "etcdutl") {
		t.Errorf("archive without etcdutl: %v", err)
	}
	if _, err := f2.Cache.ReadManifest(etcd.Component, etcd.Version, linux); !errors.Is(err, bundle.ErrNotCached) {
		t.Errorf("incomplete archive got cached: %v", err)
	}
}

func TestUpstreamCoversEveryDownloadableArtifact(t *testing.T) {
	srcs := Upstream()
	for _, a := range bundle.AllArtifacts() {
		s, err := SourceFor(srcs, a)
		if a.Image != "" {
			if err == nil {
				t.Errorf("%s: images are clusterctl's own and have no upstream download", a.ID())
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", a.ID(), err)
			continue
		}
		url := s.Expand(s.URL, linux)
		if strings.Contains(url, "{") || !strings.HasPrefix(url, "https://") || !strings.Contains(url, a.Version) {
			t.Errorf("%s: URL %s", a.ID(), url)
		}
		if s.Format == TarGz {
			for _, file := range a.Files {
				if _, ok := s.Members[file]; !ok {
					t.Errorf("%s: no archive member for %s", a.ID(), file)
				}
			}
		}
	}
}

// Package fetch fills the artifact cache by downloading upstream's official
// release files, for machines that can reach them. Every download is checked
// against a pinned sha256 before anything is cached; an interrupted download
// is resumed with a Range request (or restarted when the server will not
// resume), and a partial file never counts as cached.
package fetch

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
)

// ErrNoChecksum means no sha256 is pinned for a download; the fetcher will
// not cache a file it cannot check.
var ErrNoChecksum = errors.New("no pinned sha256")

// ErrChecksum means a download did not match its pinned sha256.
var ErrChecksum = errors.New("sha256 mismatch")

// Fetcher downloads artifacts into a cache.
type Fetcher struct {
	Cache    *bundle.Cache
	Client   *http.Client    // http.DefaultClient if nil
	Platform bundle.Platform // the host platform if zero
	Out      io.Writer       // progress lines; nil for none
	Attempts int             // tries per download, resuming each time; 3 if zero
	Force    bool            // download even what is cached
}

func (f *Fetcher) platform() bundle.Platform {
	if f.Platform == (bundle.Platform{}) {
		return bundle.HostPlatform()
	}
	return f.Platform
}

func (f *Fetcher) printf(format string, args ...any) {
	if f.Out != nil {
		fmt.Fprintf(f.Out, format, args...)
	}
}

// Result says what Fetch did.
type Result struct {
	Manifest bundle.Manifest
	Reused   bool
}

// Fetch makes sure artifact a is cached, downloading it from src if it is
// not. sum overrides the pinned sha256 of src (for versions nobody pinned
// yet); with neither, Fetch refuses with ErrNoChecksum.
func (f *Fetcher) Fetch(ctx context.Context, a bundle.Artifact, src Source, sum string) (Result, error) {
	p := f.platform()
	if !f.Force {
		if m, err := f.Cache.VerifyArtifact(a.Component, a.Version, p); err == nil {
			f.printf("reusing %s %s\n", a.ID(), p)
			return Result{Manifest: m, Reused: true}, nil
		}
	}
	if sum == "" {
		sum = src.Sum(p)
	}
	if sum == "" {
		return Result{}, fmt.Errorf("%s %s: %w for %s; pass --sha256 %s=SUM or use `clusterctl bundle build`", a.ID(), p, ErrNoChecksum, src.Expand(src.URL, p), a.Component)
	}
	if len(sum) != 64 {
		return Result{}, fmt.Errorf("%s: sha256 %q is not 64 hex digits", a.ID(), sum)
	}
	url := src.Expand(src.URL, p)
	dir := f.Cache.Dir(a.Component, a.Version, p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	if err := f.Cache.Invalidate(a.Component, a.Version, p); err != nil {
		return Result{}, err
	}
	start := time.Now()
	f.printf("downloading %s %s from %s ... ", a.ID(), p, url)
	// The partial download keeps a stable name so that a later run can
	// resume it; it starts with a dot and is never listed in a manifest.
	partial := filepath.Join(dir, ".partial-"+path.Base(url))
	if err := f.download(ctx, url, partial, sum); err != nil {
		f.printf("failed\n")
		return Result{}, fmt.Errorf("%s %s: %w", a.ID(), p, err)
	}
	err := f.place(a, src, p, partial, dir)
	os.Remove(partial)
	if err != nil {
		f.printf("failed\n")
		return Result{}, fmt.Errorf("%s %s: %w", a.ID(), p, err)
	}
	took := time.Since(start)
	m := bundle.Manifest{
		Component: a.Component, Version: a.Version, OS: p.OS, Arch: p.Arch,
		Source:  url + " (sha256 " + sum + ")",
		Recipe:  "download:" + sum,
		BuiltAt: time.Now().UTC().Truncate(time.Second),
		Seconds: took.Round(100 * time.Millisecond).Seconds(),
	}
	m, err = f.Cache.Commit(m, a.Files)
	if err != nil {
		f.printf("failed\n")
		return Result{}, err
	}
	f.printf("%.1fs, %d bytes\n", took.Seconds(), m.Size())
	return Result{Manifest: m}, nil
}

// download fetches url into partial, resuming what is already there, and
// checks the whole file against sum. On a mismatch the partial file is
// removed, so the next try starts clean.
func (f *Fetcher) download(ctx context.Context, url, partial, sum string) error {
	attempts := f.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var errs []error
	for i := 0; i < attempts; i++ {
		err := f.once(ctx, url, partial)
		if err == nil {
			got, _, herr := bundle.HashFile(partial)
			if herr != nil {
				return herr
			}
			if got != sum {
				os.Remove(partial)
				return fmt.Errorf("%s: %w: got %s, want %s; nothing was cached", url, ErrChecksum, got, sum)
			}
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || !retryable(err) {
			break
		}
	}
	return fmt.Errorf("downloading %s: %w", url, errors.Join(errs...))
}

// httpStatusError is a response that retrying will not fix.
type httpStatusError struct {
	url    string
	status string
}

func (e *httpStatusError) Error() string { return e.url + ": " + e.status }

func retryable(err error) bool {
	var se *httpStatusError
	return !errors.As(err, &se)
}

// once makes one request, appending to partial from its current size.
func (f *Fetcher) once(ctx context.Context, url, partial string) error {
	var have int64
	if st, err := os.Stat(partial); err == nil {
		have = st.Size()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &httpStatusError{url: url, status: err.Error()}
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	flags := os.O_CREATE | os.O_WRONLY
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		flags |= os.O_APPEND // resumed
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC // no range support, or a fresh start
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The partial file is no prefix of the current one: start over.
		os.Remove(partial)
		return fmt.Errorf("%s: server refused to resume at byte %d, restarting", url, have)
	default:
		return &httpStatusError{url: url, status: resp.Status}
	}
	out, err := os.OpenFile(partial, flags, 0o644)
	if err != nil {
		return err
	}
	_, cerr := io.Copy(out, resp.Body)
	if err := out.Close(); cerr == nil {
		cerr = err
	}
	return cerr
}

// place moves the artifact's files out of a verified download into dir,
// each through a temporary name.
func (f *Fetcher) place(a bundle.Artifact, src Source, p bundle.Platform, download, dir string) error {
	switch src.Format {
	case Raw:
		if len(a.Files) != 1 {
			return fmt.Errorf("a raw download holds one file, %s has %d", a.ID(), len(a.Files))
		}
		return copyInto(filepath.Join(dir, a.Files[0]), func(w io.Writer) error {
			in, err := os.Open(download)
			if err != nil {
				return err
			}
			defer in.Close()
			_, err = io.Copy(w, in)
			return err
		})
	case TarGz:
		want := map[string]string{} // member path -> artifact file
		for _, file := range a.Files {
			m, ok := src.Members[file]
			if !ok {
				return fmt.Errorf("source of %s does not say where %s is in the archive", a.ID(), file)
			}
			want[path.Clean(src.Expand(m, p))] = file
		}
		if err := extract(download, want, dir); err != nil {
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown download format %q", src.Format)
}

// extract copies the wanted members of a .tar.gz into dir under their
// artifact names; every wanted member must be present.
func extract(archive string, want map[string]string, dir string) error {
	in, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		return fmt.Errorf("%s: %w", archive, err)
	}
	tr := tar.NewReader(zr)
	found := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
		file, ok := want[path.Clean(h.Name)]
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		if err := copyInto(filepath.Join(dir, file), func(w io.Writer) error {
			_, err := io.Copy(w, tr)
			return err
		}); err != nil {
			return err
		}
		found[file] = true
	}
	for member, file := range want {
		if !found[file] {
			return fmt.Errorf("%s has no file %s", archive, member)
		}
	}
	return nil
}

// copyInto writes an executable file through a temporary name.
func copyInto(final string, write func(io.Writer) error) error {
	tmp, err := bundle.TempFile(final)
	if err != nil {
		return err
	}
	werr := write(tmp)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp.Name(), 0o755)
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), final)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

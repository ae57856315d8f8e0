package provision

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"
)

// FileOptions say how an uploaded or written file ends up.
type FileOptions struct {
	// Mode of the final file; 0 means 0644. Use 0600 for secrets: the mode
	// is set before any content is written.
	Mode fs.FileMode
	// Owner is "user" or "user:group"; empty keeps the uploader's.
	Owner string
	// SHA256 of the content in hex, when the caller knows it already (a
	// bundle checksum), to save hashing the local file.
	SHA256 string
	// Progress is called as bytes are handed to the connection.
	Progress func(sent, total int64)
}

// Transfer reports what an Upload or WriteFile did.
type Transfer struct {
	Size    int64  // bytes of content
	Sent    int64  // bytes sent; 0 when skipped
	Skipped bool   // the remote file already had this content
	SHA256  string // hex sha256 of the content
}

// FileInfo describes a remote path.
type FileInfo struct {
	Path    string
	Size    int64
	Mode    fs.FileMode
	ModTime time.Time
	UID     uint32
	GID     uint32
}

// IsDir reports whether the path is a directory.
func (f FileInfo) IsDir() bool { return f.Mode.IsDir() }

// tempMarker is in the name of every temporary upload; a later upload of
// the same file removes leftovers of a cut one.
const tempMarker = ".clusterctl-tmp-"

var errChecksum = errors.New("checksum mismatch")

// sftpClient opens the shared SFTP channel on first use. With sudo it runs
// the host's sftp-server through sudo on an exec channel, so every file
// operation is root's and uploads keep SFTP's pipelined speed and the
// atomic rename in the target folder.
func (c *Client) sftpClient() (*sftp.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("client closed")
	}
	if c.sftp != nil {
		return c.sftp, nil
	}
	opts := []sftp.ClientOption{
		sftp.UseConcurrentWrites(true),
		sftp.MaxConcurrentRequestsPerFile(64),
	}
	if c.sudo == sudoNone {
		cl, err := sftp.NewClient(c.ssh, opts...)
		if err != nil {
			return nil, fmt.Errorf("start sftp: %w", err)
		}
		c.sftp = cl
		return cl, nil
	}
	sess, err := c.newSession(context.Background())
	if err != nil {
		return nil, fmt.Errorf("sftp: %w", err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	errTail := &tailBuffer{max: 1024}
	sess.Stderr = errTail
	line, pre := c.command(sftpServerScript, true)
	if err := sess.Start(line); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start sftp-server under sudo: %w", err)
	}
	if pre != "" {
		if _, err := io.WriteString(stdin, pre); err != nil {
			sess.Close()
			return nil, fmt.Errorf("start sftp-server under sudo: %w", err)
		}
	}
	cl, err := sftp.NewClientPipe(stdout, stdin, opts...)
	if err != nil {
		sess.Close()
		return nil, fmt.Errorf("start sftp-server under sudo: %w: %s", err, c.scrub(strings.TrimSpace(errTail.String())))
	}
	c.sftp, c.sftpSess = cl, sess
	return cl, nil
}

// sftpServerScript finds OpenSSH's sftp-server where the common
// distributions install it.
const sftpServerScript = `for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server /usr/libexec/sftp-server /usr/lib/sftp-server; do
  if [ -x "$p" ]; then exec "$p"; fi
done
echo "no sftp-server found (install openssh-server or openssh-sftp-server)" >&2
exit 127`

// Upload copies a local file to remotePath atomically. The content goes to
// a temporary file in the same folder, its remote sha256 must equal the
// local one, mode and owner are set, and only then is it renamed over
// remotePath: a cut connection never leaves a partial file there. When the
// remote file already has the same sha256 nothing is sent (mode and owner
// are still corrected).
func (c *Client) Upload(ctx context.Context, localPath, remotePath string, opts FileOptions) (Transfer, error) {
	f, err := os.Open(localPath)
	if err != nil {
		return Transfer{}, c.fail("upload "+remotePath, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Transfer{}, c.fail("upload "+remotePath, err)
	}
	if !st.Mode().IsRegular() {
		return Transfer{}, c.fail("upload "+remotePath, fmt.Errorf("%s is not a regular file", localPath))
	}
	return c.put(ctx, f, st.Size(), remotePath, opts, "upload")
}

// WriteFile writes data to remotePath atomically, the same way Upload does.
func (c *Client) WriteFile(ctx context.Context, remotePath string, data []byte, opts FileOptions) (Transfer, error) {
	return c.put(ctx, bytes.NewReader(data), int64(len(data)), remotePath, opts, "write")
}

func (c *Client) put(ctx context.Context, src io.ReadSeeker, size int64, dst string, opts FileOptions, verb string) (Transfer, error) {
	step := verb + " " + dst
	if !path.IsAbs(dst) {
		return Transfer{}, c.fail(step, errors.New("remote path must be absolute"))
	}
	mode := opts.Mode.Perm()
	if mode == 0 {
		mode = 0o644
	}
	// Look at the remote file while the local one is hashed.
	type probe struct {
		st  remoteState
		err error
	}
	probed := make(chan probe, 1)
	go func() {
		st, err := c.remoteFile(ctx, dst, size)
		probed <- probe{st, err}
	}()
	sum := strings.ToLower(opts.SHA256)
	var hashErr error
	if sum == "" {
		h := sha256.New()
		_, hashErr = io.Copy(h, src)
		if hashErr == nil {
			_, hashErr = src.Seek(0, io.SeekStart)
		}
		sum = hex.EncodeToString(h.Sum(nil))
	}
	remote := <-probed
	if hashErr != nil {
		return Transfer{}, c.fail(step+": hash local file", hashErr)
	}
	tr := Transfer{Size: size, SHA256: sum}
	if remote.err != nil {
		return tr, c.fail(step+": check remote file", remote.err)
	}
	if remote.st.sum == sum {
		tr.Skipped = true
		if err := c.fixMeta(ctx, dst, remote.st, mode, opts.Owner); err != nil {
			return tr, c.fail(step+": set mode and owner", err)
		}
		return tr, nil
	}

	sc, err := c.sftpClient()
	if err != nil {
		return tr, c.fail(step, err)
	}
	if err := sc.MkdirAll(path.Dir(dst)); err != nil {
		return tr, c.fail(step+": create folder "+path.Dir(dst), err)
	}
	tmp := dst + tempMarker + randomHex(6)
	sent, err := c.writeTemp(ctx, sc, tmp, src, size, mode, opts.Progress)
	tr.Sent = sent
	if err != nil {
		c.removeQuietly(sc, tmp)
		return tr, c.fail(step+": write temporary file "+path.Base(tmp), err)
	}
	if err := c.verifyTemp(ctx, tmp, sum, opts.Owner); err != nil {
		c.removeQuietly(sc, tmp)
		return tr, c.fail(step+": verify "+path.Base(tmp), err)
	}
	if err := c.rename(ctx, sc, tmp, dst); err != nil {
		c.removeQuietly(sc, tmp)
		return tr, c.fail(step+": rename into place", err)
	}
	c.removeLeftovers(sc, dst)
	return tr, nil
}

// remoteState is what the remote final path holds now.
type remoteState struct {
	exists      bool
	sum         string // "" when absent or of another size
	mode        fs.FileMode
	user, group string
}

// remoteFile describes the remote file in one command (as root with
// sudo); it hashes it only when its size is size, since otherwise the
// content differs anyway.
func (c *Client) remoteFile(ctx context.Context, p string, size int64) (remoteState, error) {
	script := `f=` + Quote(p) + `
if [ ! -e "$f" ] && [ ! -L "$f" ]; then echo absent; exit 0; fi
if [ ! -f "$f" ]; then echo "$f exists and is not a regular file" >&2; exit 3; fi
stat -L -c 'meta %s %a %U %G' -- "$f" || exit 4
if [ "$(stat -L -c %s -- "$f")" = ` + strconv.FormatInt(size, 10) + ` ]; then
  set -- $(sha256sum < "$f") || exit 4
  echo "sum $1"
fi`
	res, err := c.run(ctx, Cmd{Line: script}, true)
	if err != nil {
		return remoteState{}, err
	}
	var st remoteState
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && f[0] == "absent":
			return remoteState{}, nil
		case len(f) == 2 && f[0] == "sum" && len(f[1]) == 64:
			st.sum = f[1]
		case len(f) == 5 && f[0] == "meta":
			m, err := strconv.ParseUint(f[2], 8, 32)
			if err != nil {
				return remoteState{}, fmt.Errorf("unexpected stat output %q", line)
			}
			st.exists, st.mode, st.user, st.group = true, fs.FileMode(m), f[3], f[4]
		}
	}
	if !st.exists {
		return remoteState{}, fmt.Errorf("unexpected output from stat: %q", tail(res.Stdout, 200))
	}
	return st, nil
}

// fixMeta corrects mode and owner of an already current file.
func (c *Client) fixMeta(ctx context.Context, p string, st remoteState, mode fs.FileMode, owner string) error {
	var cmds []string
	if st.mode.Perm() != mode {
		cmds = append(cmds, "chmod "+strconv.FormatUint(uint64(mode), 8)+" -- "+Quote(p))
	}
	if owner != "" && !sameOwner(owner, st.user, st.group) {
		cmds = append(cmds, "chown "+Quote(owner)+" -- "+Quote(p))
	}
	if len(cmds) == 0 {
		return nil
	}
	_, err := c.run(ctx, Cmd{Line: strings.Join(cmds, " && ")}, true)
	return err
}

func sameOwner(want, user, group string) bool {
	u, g, hasGroup := strings.Cut(want, ":")
	return u == user && (!hasGroup || g == group)
}

// writeTemp creates tmp with mode before writing content (so a secret is
// never readable by others), streams src with pipelined writes and syncs.
func (c *Client) writeTemp(ctx context.Context, sc *sftp.Client, tmp string, src io.Reader, size int64, mode fs.FileMode, progress func(int64, int64)) (int64, error) {
	f, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return 0, err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return 0, err
	}
	pr := &progressReader{ctx: ctx, r: src, size: size, progress: progress}
	n, err := f.ReadFrom(pr)
	if err == nil && n != size {
		err = fmt.Errorf("wrote %d of %d bytes (local file changed?)", n, size)
	}
	if err != nil {
		f.Close()
		return pr.n, err
	}
	if err := f.Sync(); err != nil && !unsupported(err) {
		f.Close()
		return pr.n, err
	}
	return pr.n, f.Close()
}

func unsupported(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported
}

// verifyTemp checks the remote sha256 of tmp and sets its owner.
func (c *Client) verifyTemp(ctx context.Context, tmp, sum, owner string) error {
	script := "set -e\n"
	if owner != "" {
		script += "chown " + Quote(owner) + " -- " + Quote(tmp) + "\n"
	}
	script += "sha256sum < " + Quote(tmp)
	res, err := c.run(ctx, Cmd{Line: script}, true)
	if err != nil {
		return err
	}
	got := strings.Fields(string(res.Stdout))
	if len(got) == 0 || got[0] != sum {
		return fmt.Errorf("%w: remote sha256 %q, local %s", errChecksum, strings.TrimSpace(string(res.Stdout)), sum)
	}
	return nil
}

// rename moves tmp over dst atomically: posix-rename@openssh.com when the
// server has it, else mv (rename(2)) on the host.
func (c *Client) rename(ctx context.Context, sc *sftp.Client, tmp, dst string) error {
	if _, ok := sc.HasExtension("posix-rename@openssh.com"); ok {
		return sc.PosixRename(tmp, dst)
	}
	_, err := c.run(ctx, Cmd{Line: "mv -f -- " + Quote(tmp) + " " + Quote(dst)}, true)
	return err
}

func (c *Client) removeQuietly(sc *sftp.Client, p string) {
	done := make(chan struct{})
	go func() {
		sc.Remove(p)
		close(done)
	}()
	select {
	case <-done:
	case <-c.lost:
	case <-time.After(5 * time.Second):
	}
}

// removeLeftovers deletes temporary files that cut uploads of dst left.
// Apply holds the state lock, so no other upload of dst is in flight.
func (c *Client) removeLeftovers(sc *sftp.Client, dst string) {
	entries, err := sc.ReadDir(path.Dir(dst))
	if err != nil {
		return
	}
	prefix := path.Base(dst) + tempMarker
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Mode().IsRegular() {
			sc.Remove(path.Join(path.Dir(dst), e.Name()))
		}
	}
}

// progressReader counts bytes handed to SFTP, reports them and stops on
// cancellation. Size lets pkg/sftp pick concurrent writes.
type progressReader struct {
	ctx      context.Context
	r        io.Reader
	n, size  int64
	progress func(int64, int64)
}

func (p *progressReader) Size() int64 { return p.size }

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	if n > 0 {
		p.n += int64(n)
		if p.progress != nil {
			p.progress(p.n, p.size)
		}
	}
	return n, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ReadFile returns the content of a remote file.
func (c *Client) ReadFile(ctx context.Context, p string) ([]byte, error) {
	sc, err := c.sftpClient()
	if err != nil {
		return nil, c.fail("read "+p, err)
	}
	f, err := sc.Open(p)
	if err != nil {
		return nil, c.fail("read "+p, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	if _, err := f.WriteTo(&buf); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, c.fail("read "+p, err)
	}
	return buf.Bytes(), nil
}

// Stat describes a remote path (following symlinks).
func (c *Client) Stat(ctx context.Context, p string) (FileInfo, error) {
	sc, err := c.sftpClient()
	if err != nil {
		return FileInfo{}, c.fail("stat "+p, err)
	}
	st, err := sc.Stat(p)
	if err != nil {
		return FileInfo{}, c.fail("stat "+p, err)
	}
	fi := FileInfo{Path: p, Size: st.Size(), Mode: st.Mode(), ModTime: st.ModTime()}
	if fs, ok := st.Sys().(*sftp.FileStat); ok {
		fi.UID, fi.GID = fs.UID, fs.GID
	}
	return fi, nil
}

// Remove deletes a file, a symlink or a directory tree. A missing path is
// not an error.
func (c *Client) Remove(ctx context.Context, p string) error {
	if p == "/" || !path.IsAbs(p) {
		return c.fail("remove "+p, errors.New("refusing to remove a relative path or /"))
	}
	sc, err := c.sftpClient()
	if err != nil {
		return c.fail("remove "+p, err)
	}
	st, err := sc.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return c.fail("remove "+p, err)
	case st.IsDir():
		err = sc.RemoveAll(p)
	default:
		err = sc.Remove(p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return c.fail("remove "+p, err)
	}
	return nil
}

// MkdirAll creates a directory and any missing parents; the directory
// itself gets mode (parents get the server's default).
func (c *Client) MkdirAll(ctx context.Context, p string, mode fs.FileMode) error {
	sc, err := c.sftpClient()
	if err != nil {
		return c.fail("mkdir "+p, err)
	}
	if err := sc.MkdirAll(p); err != nil {
		return c.fail("mkdir "+p, err)
	}
	if err := sc.Chmod(p, mode); err != nil {
		return c.fail("mkdir "+p, err)
	}
	return nil
}

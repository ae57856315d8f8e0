package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Host is a connection to one machine. Components and apply work against
// this interface; *Client is the SSH implementation.
type Host interface {
	// Name is the host's configured name, for messages.
	Name() string
	// Run runs a shell command line (as root when sudo is configured).
	Run(ctx context.Context, cmd Cmd) (Result, error)
	// Upload copies a local file to remotePath atomically, skipping the
	// transfer when the remote file already has the same sha256.
	Upload(ctx context.Context, localPath, remotePath string, opts FileOptions) (Transfer, error)
	// WriteFile writes data to remotePath atomically, like Upload.
	WriteFile(ctx context.Context, remotePath string, data []byte, opts FileOptions) (Transfer, error)
	// ReadFile returns a remote file's content; a missing file is an error
	// matching fs.ErrNotExist.
	ReadFile(ctx context.Context, remotePath string) ([]byte, error)
	// Stat describes a remote path; a missing path matches fs.ErrNotExist.
	Stat(ctx context.Context, remotePath string) (FileInfo, error)
	// Remove deletes a file or a directory tree; a missing path is not an
	// error.
	Remove(ctx context.Context, remotePath string) error
	// MkdirAll creates a directory and its parents; the last one gets mode.
	MkdirAll(ctx context.Context, remotePath string, mode fs.FileMode) error
	// Facts gathers what the host is, in one round trip.
	Facts(ctx context.Context) (Facts, error)
	Close() error
}

var _ Host = (*Client)(nil)

// maxSessions bounds the channels one connection opens at once. OpenSSH
// allows 10 by default (MaxSessions); one is kept for SFTP.
const maxSessions = 8

// Client is one SSH connection to a host, shared by all operations: each
// command is a channel, all file operations share one SFTP channel. It is
// safe for concurrent use. After the connection is lost every operation
// fails with ErrConnectionLost; Dial again to reconnect.
type Client struct {
	name string
	addr string
	user string

	ssh  *ssh.Client
	hops []*ssh.Client // the chain, ssh last; closed in reverse

	sudo         sudoMode
	sudoPassword string

	sessions chan struct{} // semaphore of maxSessions
	lost     chan struct{} // closed when the connection has ended
	done     chan struct{} // closed by Close

	mu       sync.Mutex
	sftp     *sftp.Client
	sftpSess *ssh.Session
	closed   bool
}

func newClient(e endpoint, hops []*ssh.Client) *Client {
	c := &Client{
		name:     e.name,
		addr:     e.addr(),
		user:     e.user,
		ssh:      hops[len(hops)-1],
		hops:     hops,
		sessions: make(chan struct{}, maxSessions),
		lost:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go func() {
		c.ssh.Wait()
		close(c.lost)
	}()
	return c
}

// Name returns the host's configured name.
func (c *Client) Name() string { return c.name }

// Addr returns the address dialled for the host (the last hop).
func (c *Client) Addr() string { return c.addr }

// User returns the login user.
func (c *Client) User() string { return c.user }

// Close ends the connection and its jump connections.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	if c.sftp != nil {
		c.sftp.Close()
	}
	if c.sftpSess != nil {
		c.sftpSess.Close()
	}
	c.mu.Unlock()
	var errs []error
	for i := len(c.hops) - 1; i >= 0; i-- {
		if err := c.hops[i].Close(); err != nil && !errors.Is(err, io.EOF) && i == len(c.hops)-1 {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// startKeepAlive sends keepalive@openssh.com requests and closes the
// connection when the host stops answering, so blocked operations fail
// instead of hanging on a dead link.
func (c *Client) startKeepAlive(cfg Config) {
	interval := cfg.KeepAliveInterval
	if interval <= 0 {
		interval = DefaultKeepAliveInterval
	}
	maxMissed := cfg.KeepAliveCountMax
	if maxMissed <= 0 {
		maxMissed = DefaultKeepAliveCountMax
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		missed := 0
		for {
			select {
			case <-c.done:
				return
			case <-c.lost:
				return
			case <-t.C:
			}
			reply := make(chan error, 1)
			go func() {
				_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
				reply <- err
			}()
			select {
			case err := <-reply:
				if err != nil {
					c.ssh.Close()
					return
				}
				missed = 0
			case <-time.After(interval):
				if missed++; missed >= maxMissed {
					c.ssh.Close()
					return
				}
			case <-c.done:
				return
			}
		}
	}()
}

// alive reports whether the connection still answers. It is asked only
// after an unexpected error, to tell a lost connection from a failed
// operation.
func (c *Client) alive() bool {
	select {
	case <-c.lost:
		return false
	default:
	}
	reply := make(chan error, 1)
	go func() {
		_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
		reply <- err
	}()
	select {
	case err := <-reply:
		return err == nil
	case <-c.lost:
		return false
	case <-time.After(5 * time.Second):
		c.ssh.Close() // a link that cannot answer a keepalive in 5s is dead to us
		return false
	}
}

// fail wraps err with the host, address and step, marking it
// ErrConnectionLost when the connection is gone.
func (c *Client) fail(step string, err error) error {
	if !expected(err) && !errors.Is(err, ErrConnectionLost) && !c.alive() {
		err = fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	return &Error{Host: c.name, Addr: c.addr, Step: step, Err: err}
}

// expected errors are answers from a working connection.
func expected(err error) bool {
	var ee *ExitError
	var se *sftp.StatusError
	return errors.As(err, &ee) || errors.As(err, &se) || errors.Is(err, fs.ErrNotExist) ||
		errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrExist) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrSudo) || errors.Is(err, errChecksum)
}

// Cmd is a command to run on a host.
type Cmd struct {
	// Line is a POSIX shell command line, run with sh -c; as root through
	// sudo when the Config asks for sudo.
	Line  string
	Stdin io.Reader // must reach EOF; nil: empty
	// Stdout and Stderr receive the output; nil: captured in the Result.
	Stdout io.Writer
	Stderr io.Writer
	// AsLoginUser skips sudo.
	AsLoginUser bool
}

// Result is what a command left behind.
type Result struct {
	ExitCode int
	Stdout   []byte // when Cmd.Stdout was nil
	Stderr   []byte // when Cmd.Stderr was nil
}

// Run runs cmd. A command that exits non-zero returns its Result and an
// error wrapping *ExitError. Cancelling ctx sends the command SIGTERM and
// closes its channel; servers that ignore signal requests (OpenSSH without
// privilege separation) let it run to its end.
func (c *Client) Run(ctx context.Context, cmd Cmd) (Result, error) {
	res, err := c.run(ctx, cmd, !cmd.AsLoginUser)
	if err != nil {
		return res, c.fail("run "+shortCmd(cmd.Line), err)
	}
	return res, nil
}

// newSession opens a session channel. OpenSSH frees a closed session's
// slot only on its next loop turn, so a burst of short commands can briefly
// meet MaxSessions ("open failed"); such refusals are retried for a while.
func (c *Client) newSession(ctx context.Context) (*ssh.Session, error) {
	delay := 5 * time.Millisecond
	for try := 1; ; try++ {
		sess, err := c.ssh.NewSession()
		var oce *ssh.OpenChannelError
		if err == nil || !errors.As(err, &oce) || oce.Reason != ssh.ConnectionFailed || try == 12 {
			if err != nil {
				return nil, fmt.Errorf("open channel: %w", err)
			}
			return sess, nil
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		delay = min(2*delay, 500*time.Millisecond)
	}
}

// Output runs a command line on h and returns its standard output.
func Output(ctx context.Context, h Host, line string) (string, error) {
	res, err := h.Run(ctx, Cmd{Line: line})
	return string(res.Stdout), err
}

func shortCmd(line string) string {
	line = strings.TrimSpace(line)
	if i := strings.IndexByte(line, '\n'); i >= 0 {
		line = line[:i] + " …"
	}
	if len(line) > 60 {
		line = line[:57] + "…"
	}
	return "`" + line + "`"
}

func (c *Client) run(ctx context.Context, cmd Cmd, privileged bool) (Result, error) {
	select {
	case c.sessions <- struct{}{}:
		defer func() { <-c.sessions }()
	case <-ctx.Done():
		return Result{ExitCode: -1}, ctx.Err()
	}
	sess, err := c.newSession(ctx)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	defer sess.Close()

	line, pre := c.command(cmd.Line, privileged)
	stdin := cmd.Stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	if pre != "" {
		stdin = io.MultiReader(strings.NewReader(pre), stdin)
	}
	var stdout, stderr bytes.Buffer
	errTail := &tailBuffer{max: 2048}
	sess.Stdin = stdin
	sess.Stdout = cmd.Stdout
	if cmd.Stdout == nil {
		sess.Stdout = &stdout
	}
	sess.Stderr = io.MultiWriter(errTail, &stderr)
	if cmd.Stderr != nil {
		sess.Stderr = io.MultiWriter(errTail, cmd.Stderr)
	}

	if err := sess.Start(line); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("start: %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		// TERM reaches the command through sudo, which relays it; closing
		// the channel stops its I/O. The host may let an orphaned child of
		// the command finish on its own; we do not wait for it.
		sess.Signal(ssh.SIGTERM)
		sess.Close()
		return Result{ExitCode: -1}, ctx.Err()
	}

	res := Result{}
	if cmd.Stdout == nil {
		res.Stdout = stdout.Bytes()
	}
	if cmd.Stderr == nil {
		res.Stderr = stderr.Bytes()
	}
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
		xe := &ExitError{Code: ee.ExitStatus(), Signal: ee.Signal(), Stderr: c.scrub(errTail.String())}
		if xe.Signal != "" {
			res.ExitCode, xe.Code = -1, -1
		}
		return res, xe
	case errors.As(err, &missing):
		res.ExitCode = -1
		return res, fmt.Errorf("%w: command ended without an exit status", ErrConnectionLost)
	default:
		res.ExitCode = -1
		return res, err
	}
}

// scrub removes the sudo password from text shown to the user, in case a
// remote program echoes what it read.
func (c *Client) scrub(s string) string {
	if c.sudoPassword == "" {
		return s
	}
	return strings.ReplaceAll(s, c.sudoPassword, "(sensitive)")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return tail(t.buf, t.max) }

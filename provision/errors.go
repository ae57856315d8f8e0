package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

// Error is a failure on one host. It names the host, the address that was
// dialled and the step that failed, so a message from a fan-out over many
// hosts still says where it came from.
type Error struct {
	Host     string // the configured name of the host
	Addr     string // host:port as dialled ("" when not yet resolved)
	Step     string // "connect", "host key", "auth", "sudo", "run", "upload", ...
	Attempts int    // dial attempts made; 0 for errors after the connection was up
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Host)
	if e.Addr != "" && e.Addr != e.Host {
		fmt.Fprintf(&b, " (%s)", e.Addr)
	}
	fmt.Fprintf(&b, ": %s: %v", e.Step, e.Err)
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// sentinel is an error value that knows whether retrying can help.
type sentinel struct {
	msg       string
	transient bool
}

func (s *sentinel) Error() string { return s.msg }

// Is lets errors.Is(err, ErrTransient) match every transient sentinel.
func (s *sentinel) Is(target error) bool { return s.transient && target == ErrTransient }

// Sentinel errors. Check them with errors.Is; IsTransient says whether a retry
// may help.
var (
	// ErrTransient matches every error for which a later retry may succeed.
	ErrTransient = errors.New("transient error")

	ErrUnreachable error = &sentinel{"host unreachable", true}
	// ErrRefused is a TCP connection refused: the host is up, nothing
	// listens on the port. Dial retries it only briefly (maxRefused), for
	// an sshd that is just starting.
	ErrRefused        error = &sentinel{"connection refused", true}
	ErrTimeout        error = &sentinel{"timed out", true}
	ErrConnectionLost error = &sentinel{"connection lost", true}

	ErrAuth           error = &sentinel{"authentication failed", false}
	ErrHostKeyUnknown error = &sentinel{"host key unknown", false}
	ErrHostKeyChanged error = &sentinel{"HOST KEY CHANGED", false}
	ErrSudo           error = &sentinel{"sudo failed", false}
)

// IsTransient reports whether err is one a retry may cure: an unreachable
// host, a timeout, a dropped connection.
func IsTransient(err error) bool { return errors.Is(err, ErrTransient) }

// ExitError is a remote command that ran and exited non-zero.
type ExitError struct {
	Code   int    // exit status; -1 when the command died without one
	Signal string // set when the command was killed by a signal
	Stderr string // the end of its standard error, for the message
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("exit status %d", e.Code)
	if e.Signal != "" {
		msg = "killed by signal " + e.Signal
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// refusedError is a connection refused, worded for a sysadmin; the dial
// error stays reachable through errors.Is / As.
type refusedError struct{ err error }

func (e *refusedError) Error() string {
	return "connection refused: the host answers but nothing listens on that port (is sshd running, is the port right?)"
}

func (e *refusedError) Unwrap() []error { return []error{ErrRefused, e.err} }

// classifyNetErr tags a dial or handshake error with the sentinel that says
// whether retrying helps. Unknown errors are returned as they are
// (permanent), and so are errors tagged already.
func classifyNetErr(err error) error {
	if err == nil {
		return nil
	}
	var dnsErr *net.DNSError
	switch {
	case tagged(err):
		return err
	case errors.Is(err, syscall.ECONNREFUSED):
		return &refusedError{err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return err // a typo in a host name does not heal by retrying
		}
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	case errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// tagged reports whether err carries one of the sentinels already.
func tagged(err error) bool {
	for _, s := range []error{ErrUnreachable, ErrRefused, ErrTimeout, ErrConnectionLost, ErrAuth, ErrHostKeyUnknown, ErrHostKeyChanged, ErrSudo} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// tail returns at most the last n bytes of b, starting at a line boundary
// when one is near.
func tail(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	b = b[len(b)-n:]
	if i := strings.IndexByte(string(b), '\n'); i >= 0 && i < len(b)-1 {
		b = b[i+1:]
	}
	return "…" + string(b)
}

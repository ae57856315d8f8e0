package provision

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// maxRefused is how many dials in a row a refused connection gets: about
// 2 s, enough for an sshd that is starting, short of a whole connect
// timeout spent on a port where nothing listens.
const maxRefused = 4

// Dial connects to the host cfg describes, through its jump hosts, checks
// its host key, authenticates, and sets up sudo. Transient failures
// (unreachable, reset, timed out) are retried with backoff until
// cfg.ConnectTimeout has passed, a refused connection maxRefused times;
// authentication and host key failures are returned at once. Every error is an *Error naming host, address and step.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	e, err := cfg.resolve()
	if err != nil {
		return nil, &Error{Host: cfg.name(), Addr: cfg.Host, Step: "config", Err: err}
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.connectTimeout())
	defer cancel()

	backoff := 250 * time.Millisecond
	refused := 0
	for attempt := 1; ; attempt++ {
		c, ferr := dialOnce(dctx, e)
		if ferr == nil {
			if err := c.setupSudo(dctx, cfg); err != nil {
				c.Close()
				return nil, err
			}
			c.startKeepAlive(cfg)
			return c, nil
		}
		ferr.Attempts = attempt
		if ctx.Err() != nil {
			ferr.Err = ctx.Err()
			return nil, ferr
		}
		if !IsTransient(ferr) {
			return nil, ferr
		}
		if errors.Is(ferr, ErrRefused) {
			if refused++; refused >= maxRefused {
				return nil, ferr
			}
		} else {
			refused = 0
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-dctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				ferr.Err = ctx.Err()
			}
			return nil, ferr
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// dialOnce makes one attempt through the whole jump chain.
func dialOnce(ctx context.Context, e endpoint) (*Client, *Error) {
	var hops []*ssh.Client
	closeHops := func() {
		for i := len(hops) - 1; i >= 0; i-- {
			hops[i].Close()
		}
	}
	chain := append(append([]endpoint(nil), e.jumps...), e)
	for i, hop := range chain {
		prefix := ""
		if i < len(chain)-1 {
			prefix = "jump host " + hop.name + ": "
		}
		var conn net.Conn
		var err error
		if i == 0 {
			d := net.Dialer{KeepAlive: 15 * time.Second}
			conn, err = d.DialContext(ctx, "tcp", hop.addr())
		} else {
			conn, err = hops[i-1].DialContext(ctx, "tcp", hop.addr())
			var oce *ssh.OpenChannelError
			if errors.As(err, &oce) && oce.Reason == ssh.ConnectionFailed {
				err = fmt.Errorf("%w: %s could not reach it: %w", ErrUnreachable, chain[i-1].name, err)
			}
		}
		if err != nil {
			closeHops()
			if ctx.Err() != nil {
				err = ctxErr(ctx, err)
			}
			return nil, &Error{Host: e.name, Addr: hop.addr(), Step: prefix + "connect", Err: classifyNetErr(err)}
		}
		cl, step, err := handshake(ctx, conn, hop)
		if err != nil {
			closeHops()
			return nil, &Error{Host: e.name, Addr: hop.addr(), Step: prefix + step, Err: err}
		}
		hops = append(hops, cl)
	}
	return newClient(e, hops), nil
}

// ctxErr turns an error caused by the dial deadline into ErrTimeout.
func ctxErr(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: no answer within the connect timeout: %w", ErrTimeout, err)
	}
	return ctx.Err()
}

// handshake runs the SSH handshake on conn: host key check, then
// public-key authentication. It returns the step that failed.
func handshake(ctx context.Context, conn net.Conn, hop endpoint) (*ssh.Client, string, error) {
	policy := hop.cfg.HostKeyPolicy
	if policy == "" {
		policy = HostKeyStrict
	}
	if policy != HostKeyStrict && policy != HostKeyAcceptNew {
		conn.Close()
		return nil, "host key", fmt.Errorf("unknown host key policy %q (want %q or %q)", policy, HostKeyStrict, HostKeyAcceptNew)
	}
	hk := &hostKeys{files: hop.knownHosts, policy: policy, name: hop.name}
	algos, err := hk.algorithms(hop.addr())
	if err != nil {
		conn.Close()
		return nil, "host key", fmt.Errorf("known_hosts: %w", err)
	}
	keys, closeAgent, err := signers(hop, hop.cfg)
	if err != nil {
		conn.Close()
		return nil, "auth", err
	}
	defer closeAgent()

	conf := &ssh.ClientConfig{
		User:              hop.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(keys...)},
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-clusterctl",
	}
	// The handshake has no deadline of its own; closing the conn ends it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, hop.addr(), conf)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, "handshake", ctxErr(ctx, err)
	}
	if err == nil {
		return ssh.NewClient(sc, chans, reqs), "", nil
	}
	var neg *ssh.AlgorithmNegotiationError
	switch {
	case errors.Is(err, ErrHostKeyUnknown), errors.Is(err, ErrHostKeyChanged):
		return nil, "host key", unwrapSSH(err)
	case errors.As(err, &neg) && neg.What == "host key":
		known, _ := hk.known(hop.addr())
		if len(known) > 0 {
			return nil, "host key", fmt.Errorf("%w: %s offers host keys of type %s only, but known_hosts records %s at %s:%d; it may have been reinstalled. Delete that line if the change is expected",
				ErrHostKeyChanged, hop.name, strings.Join(neg.RequestedAlgorithms, ", "), known[0].Key.Type(), known[0].Filename, known[0].Line)
		}
		return nil, "handshake", err
	case strings.Contains(err.Error(), "Too many authentication failures"):
		return nil, "auth", fmt.Errorf("%w: user %q: the host gave up after too many keys were offered (%d); name the right key in identity_files",
			ErrAuth, hop.user, len(keys))
	case strings.Contains(err.Error(), "unable to authenticate"):
		var fps []string
		for _, k := range keys {
			fps = append(fps, ssh.FingerprintSHA256(k.PublicKey()))
		}
		return nil, "auth", fmt.Errorf("%w: user %q: the host accepted none of the offered keys (%s)",
			ErrAuth, hop.user, strings.Join(fps, ", "))
	}
	return nil, "handshake", classifyNetErr(err)
}

// unwrapSSH drops x/crypto's "ssh: handshake failed:" wrapping from our own
// host key errors; the Error's Step already says where it happened.
func unwrapSSH(err error) error {
	for strings.HasPrefix(err.Error(), "ssh: ") {
		u := errors.Unwrap(err)
		if u == nil {
			break
		}
		err = u
	}
	return err
}

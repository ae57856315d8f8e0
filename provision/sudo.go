package provision

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

type sudoMode int

const (
	sudoNone       sudoMode = iota // root, or sudo not asked for
	sudoNoPassword                 // sudo -n works
	sudoPassword                   // sudo reads the password on stdin
)

// command returns the remote command line for a shell line, and what to
// write on stdin before the caller's input (the sudo password line).
//
// The line always runs under sh -c, whatever the login shell is. With a
// password, -k makes sudo ignore cached credentials, so it reads exactly one
// password line every time and the caller's stdin follows untouched; the
// password is never on a command line.
func (c *Client) command(line string, privileged bool) (string, string) {
	sh := "sh -c " + Quote(line)
	if !privileged {
		return sh, ""
	}
	switch c.sudo {
	case sudoNoPassword:
		return "sudo -n -- " + sh, ""
	case sudoPassword:
		return "sudo -k -S -p '' -- " + sh, c.sudoPassword + "\n"
	}
	return sh, ""
}

// setupSudo finds out whether the login user needs a password for sudo,
// and checks the password once, so later commands fail only for their own
// reasons.
func (c *Client) setupSudo(ctx context.Context, cfg Config) error {
	if !cfg.Sudo || c.user == "root" {
		return nil
	}
	fail := func(format string, args ...any) error {
		return &Error{Host: c.name, Addr: c.addr, Step: "sudo", Err: fmt.Errorf("%w: "+format, append([]any{ErrSudo}, args...)...)}
	}
	res, err := c.run(ctx, Cmd{Line: "sudo -k -n true"}, false)
	if err == nil {
		c.sudo = sudoNoPassword
		return nil
	}
	var ee *ExitError
	if !errors.As(err, &ee) {
		return c.fail("sudo", err)
	}
	if res.ExitCode == 127 {
		return fail("sudo is not installed on the host (user %s is not root)", c.user)
	}
	if cfg.SudoPasswordEnv == "" {
		return fail("user %s cannot use sudo without a password (%s); name an environment variable holding it with sudo_password_env",
			c.user, strings.TrimSpace(ee.Stderr))
	}
	pw := os.Getenv(cfg.SudoPasswordEnv)
	if pw == "" {
		return fail("user %s needs a sudo password, but environment variable %s is empty", c.user, cfg.SudoPasswordEnv)
	}
	c.sudoPassword = pw
	c.sudo = sudoPassword
	if _, err := c.run(ctx, Cmd{Line: "true"}, true); err != nil {
		if errors.As(err, &ee) {
			return fail("sudo refused user %s with the password from %s: %s", c.user, cfg.SudoPasswordEnv, c.scrub(strings.TrimSpace(ee.Stderr)))
		}
		return c.fail("sudo", err)
	}
	return nil
}

// Quote quotes s for a POSIX shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

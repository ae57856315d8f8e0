package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// userRE is what a unit may name as its user: a plain system user name.
var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// ErrNoUser means a unit names a user the host does not have. The
// installer creates the users a component needs before its first start.
var ErrNoUser = errors.New("no such user")

// credential is how a unit's process is started: as root (nil), or as
// name with its primary group and no supplementary groups. An agent that
// is not root itself (a test host) can only start processes as the user it
// is: naming that user is fine, any other is an error rather than a process
// that silently runs with other rights than its unit says.
func credential(name string, euid int, lookup func(string) (*user.User, error)) (*syscall.Credential, string, error) {
	if name == "" {
		return nil, "", nil
	}
	u, err := lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, "", fmt.Errorf("run as %s: %w", name, ErrNoUser)
		}
		return nil, "", fmt.Errorf("run as %s: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, "", fmt.Errorf("run as %s: uid %q gid %q: %w", name, u.Uid, u.Gid, err)
	}
	if uid == 0 {
		return nil, "", fmt.Errorf("run as %s: it is uid 0, a second root; want a system user of its own", name)
	}
	switch {
	case euid == 0:
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, u.HomeDir, nil
	case uint64(euid) == uid:
		return nil, u.HomeDir, nil // already that user
	}
	return nil, "", fmt.Errorf("run as %s: the agent runs as uid %d, not root, and cannot change its user", name, euid)
}

// withEnv sets key in a KEY=value list.
func withEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// chownTree gives dir and everything under it to uid:gid, without
// following symbolic links (a link is changed itself). A missing dir is
// fine: the component makes it.
func chownTree(dir string, uid, gid int) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

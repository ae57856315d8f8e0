package components

import (
	"context"
	"io/fs"
	"strings"

	"github.com/clusterctl/clusterctl/provision"
)

// Host is what components need from a connection to a host. The SSH client
// of package provision implements it (through a thin adapter in cmd).
type Host interface {
	// Name is the host's name in the spec.
	Name() string
	// Root is the folder the host's Layout sits under: "" on a real host.
	Root() string
	// Run runs a shell command as root and returns its stdout; a non-zero
	// exit is an error that carries the command's stderr, and the stdout
	// printed so far is still returned.
	Run(ctx context.Context, cmd string) ([]byte, error)
	// Upload copies a local file to path atomically (temp name, sha256
	// check, rename), skipping it when the remote file already has the
	// digest. It returns the bytes sent.
	Upload(ctx context.Context, local, path, sha256 string, mode fs.FileMode) (int64, error)
	// WriteFile writes a small file atomically.
	WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error
}

// shellQuote quotes s for a POSIX shell (the transport's quoting).
func shellQuote(s string) string { return provision.Quote(s) }

func shellJoin(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

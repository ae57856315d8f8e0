// Package localhost is a host on the workstation's own filesystem: every
// clusterctl path sits under a root folder (components.Layout), commands
// run with the local sh. Tests use it to drive the installer, the agent
// and the planner without SSH, root or a lab.
package localhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
)

// Host is one local host. It satisfies components.Host.
type Host struct {
	HostName string
	// Dir is the root of the host's layout.
	Dir string
	// Env is added to the environment of every command.
	Env []string
}

// Name is the host's name.
func (h *Host) Name() string { return h.HostName }

// Root is the folder every clusterctl path sits under.
func (h *Host) Root() string { return h.Dir }

// Run runs cmd with sh. A non-zero exit is an error carrying the end of
// stderr; the stdout printed so far is returned either way.
func (h *Host) Run(ctx context.Context, cmd string) ([]byte, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Env = append(os.Environ(), h.Env...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = "…" + msg[len(msg)-2000:]
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", h.HostName, err, msg)
	}
	return stdout.Bytes(), nil
}

// Upload copies local to dst (a path under Root) unless dst already has
// the digest, checking the digest before the copy takes dst's place.
func (h *Host) Upload(_ context.Context, local, dst, sum string, mode fs.FileMode) (int64, error) {
	if have, err := os.ReadFile(dst); err == nil && sha256Hex(have) == sum {
		return 0, nil
	}
	data, err := os.ReadFile(local)
	if err != nil {
		return 0, err
	}
	if sum != "" && sha256Hex(data) != sum {
		return 0, fmt.Errorf("%s: sha256 is not %s", local, sum)
	}
	return int64(len(data)), atomicfile.Write(dst, data, mode)
}

// WriteFile writes data to path (under Root) atomically.
func (h *Host) WriteFile(_ context.Context, path string, data []byte, mode fs.FileMode) error {
	return atomicfile.Write(path, data, mode)
}

func sha256Hex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

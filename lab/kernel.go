package lab

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// kernelLimit is a machine-wide setting that lab hosts share: they run on
// the workstation's kernel as one user (root), so what each host's
// kubelet and containerd take adds up.
type kernelLimit struct {
	path string // under /proc/sys
	min  int
}

// kernelLimits are raised by lab up, never lowered; lab down leaves them
// (other labs, or the machine's own programs, may rely on them by then).
// Measured: a lab control plane uses 22 inotify instances, a worker 9; 30
// hosts need several hundred, and the default is 128.
var kernelLimits = []kernelLimit{
	{"fs/inotify/max_user_instances", 8192},
	{"fs/inotify/max_user_watches", 1048576},
}

// raiseKernelLimits raises each limit below its minimum, under procSys
// (/proc/sys; tests point it elsewhere), and says what it changed.
func raiseKernelLimits(procSys string, out io.Writer) error {
	var errs []error
	for _, k := range kernelLimits {
		p := filepath.Join(procSys, k.path)
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", p, err))
			continue
		}
		have, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: not a number: %q", p, strings.TrimSpace(string(b))))
			continue
		}
		if have >= k.min {
			continue
		}
		if err := os.WriteFile(p, []byte(strconv.Itoa(k.min)+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("raise %s from %d to %d: %w", p, have, k.min, err))
			continue
		}
		fmt.Fprintf(out, "lab: raised %s from %d to %d (lab hosts share this kernel)\n", strings.ReplaceAll(k.path, "/", "."), have, k.min)
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab: kernel limits the lab hosts need: %w", errors.Join(errs...))
	}
	return nil
}

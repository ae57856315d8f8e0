//go:build unix

package build

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Lock takes the machine-wide build lock under WorkRoot, waiting (and saying
// so on Out) while another `bundle build` holds it: two builds of the same
// artifact would only race for the cores and the same workspace. Unlock by
// calling the returned function.
func (b *Builder) Lock() (unlock func(), err error) {
	if err := os.MkdirAll(b.WorkRoot, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(b.WorkRoot, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		b.printf("waiting for another bundle build (pid %s) to finish ...\n", strings.TrimSpace(string(holder)))
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() {
		f.Truncate(0)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

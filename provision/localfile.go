package provision

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Size limits for the local files the transport reads: identity files and
// ssh_config are small; known_hosts files may list thousands of hosts.
const (
	maxKeyFileSize    = 1 << 20
	maxSSHConfigSize  = 1 << 20
	maxKnownHostsSize = 16 << 20
)

// errNotRegular means a file the transport reads is a device, a FIFO or a
// folder (identity_files = ["/dev/zero"]).
var errNotRegular = errors.New("not a regular file")

// readLocalFile reads a regular file of at most limit bytes. The checks are
// made on the opened file, so a file swapped after a first look is caught
// too; a read stops one byte past the limit, whatever the file claims.
// Errors name the file; a missing file matches fs.ErrNotExist.
func readLocalFile(path string, limit int64) ([]byte, error) {
	// A FIFO would block the open itself: look before opening.
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, errNotRegular, fileKind(st.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, errNotRegular, fileKind(st.Mode()))
	}
	if st.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(path, limit)
	}
	return b, nil
}

func tooLarge(path string, limit int64) error {
	return fmt.Errorf("%s is larger than %s; that is not a file of this kind", path, sizeString(limit))
}

func sizeString(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}

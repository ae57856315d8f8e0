package apply

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/clusterctl/clusterctl/state"
)

// RetireState ends the local state of a destroyed cluster by moving the
// state folder to <folder>.destroyed-<UTC time>: a later apply starts a new
// cluster (a new CA), while the old CA, the journal and the etcd snapshots
// stay recoverable there. The lock held in the folder (lockID) is
// released in its new place. It returns the new folder, or "" when there
// was no state folder.
func RetireState(store *state.FileStore, lockID string, now time.Time) (string, error) {
	if _, err := os.Stat(store.Dir); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	base := store.Dir + ".destroyed-" + now.UTC().Format("20060102T150405Z")
	dest := base
	// Two destroys within a second: the second folder gets a number.
	for i := 2; ; i++ {
		if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dest = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(store.Dir, dest); err != nil {
		return "", fmt.Errorf("move the state folder aside: %w", err)
	}
	if err := state.NewFileStore(dest).Unlock(lockID); err != nil {
		return dest, err
	}
	return dest, nil
}

package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
)

// Store reads and writes the state of one cluster under a lock.
type Store interface {
	// Lock takes the lock for an operation ("apply", "plan"...). It fails
	// with ErrLocked (wrapped in a *LockedError naming the holder) when
	// another live run holds it.
	Lock(operation string) (LockInfo, error)
	// Unlock releases a lock this process holds.
	Unlock(id string) error
	// ForceUnlock removes a lock by ID whoever holds it.
	ForceUnlock(id string) error
	// Read returns the state, or (nil, nil) when there is none yet.
	Read() (*State, error)
	// Write saves s with the next serial, keeping a backup of the old one.
	Write(s *State) error
}

var _ Store = (*FileStore)(nil)

// Folder layout inside the state folder.
const (
	DefaultDir     = ".clusterctl"
	stateFile      = "state.json"
	lockFile       = "lock.json"
	backupDir      = "backups"
	journalFile    = "journal.jsonl"
	pkiDir         = "pki"
	snapshotsDir   = "snapshots"
	defaultBackups = 10
)

// ErrSerialConflict means the state on disk changed since it was read: a
// retry after re-reading helps.
var ErrSerialConflict = errors.New("state changed since it was read")

// ErrLineageMismatch means the state to write belongs to another cluster.
var ErrLineageMismatch = errors.New("state lineage differs")

// FileStore keeps the state in a local folder (.clusterctl beside the spec).
type FileStore struct {
	Dir string
	// Backups is how many earlier serials to keep (default 10).
	Backups int
}

// NewFileStore returns a store in dir, created 0700 on first write.
func NewFileStore(dir string) *FileStore { return &FileStore{Dir: dir, Backups: defaultBackups} }

// PKIDir is where the cluster's certificates and keys are kept.
func (f *FileStore) PKIDir() string { return filepath.Join(f.Dir, pkiDir) }

// SnapshotsDir is where etcd snapshots taken before upgrades are kept.
func (f *FileStore) SnapshotsDir() string { return filepath.Join(f.Dir, snapshotsDir) }

// JournalPath is the journal of apply steps.
func (f *FileStore) JournalPath() string { return filepath.Join(f.Dir, journalFile) }

// Read implements Store.
func (f *FileStore) Read() (*State, error) {
	path := filepath.Join(f.Dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read state %s: %w (a backup of earlier serials is in %s)", path, err, filepath.Join(f.Dir, backupDir))
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("read state %s: %w", path, err)
	}
	return &s, nil
}

// Write implements Store. The serial on disk must equal s.Serial (the state
// was read from here, or this is the first write); the written state gets
// s.Serial+1, and s is updated to match.
func (f *FileStore) Write(s *State) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	cur, err := f.Read()
	if err != nil {
		return err
	}
	if cur != nil {
		if cur.Lineage != s.Lineage {
			return fmt.Errorf("write state: %w: on disk %s, writing %s (is this spec folder used for two clusters?)", ErrLineageMismatch, cur.Lineage, s.Lineage)
		}
		if cur.Serial != s.Serial {
			return fmt.Errorf("write state: %w: serial on disk %d, read %d", ErrSerialConflict, cur.Serial, s.Serial)
		}
		if err := f.backup(cur); err != nil {
			return err
		}
	}
	next := s.Clone()
	next.Serial++
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(f.Dir, stateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	s.Serial = next.Serial
	return nil
}

// backup copies the current state to backups/state-<serial>.json and prunes
// the oldest beyond f.Backups.
func (f *FileStore) backup(cur *State) error {
	dir := filepath.Join(f.Dir, backupDir)
	b, err := json.MarshalIndent(cur, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("back up state serial %d: %w", cur.Serial, err)
	}
	if err := atomicfile.Write(filepath.Join(dir, fmt.Sprintf("state-%08d.json", cur.Serial)), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("back up state serial %d: %w", cur.Serial, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("back up state: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "state-") && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // zero-padded serials sort in order
	keep := f.Backups
	if keep <= 0 {
		keep = defaultBackups
	}
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
			return fmt.Errorf("prune state backup: %w", err)
		}
		names = names[1:]
	}
	return nil
}

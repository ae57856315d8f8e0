package state

import (
	"bytes"
	"cmp"
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
	unreleasedFile = "unreleased-lease"
	backupDir      = "backups"
	journalFile    = "journal.jsonl"
	sumCacheFile   = "sha256-cache.json"
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

// SumCachePath is where the digests of the workstation's files (the spec's
// image archives) are remembered between runs (internal/filesum).
func (f *FileStore) SumCachePath() string { return filepath.Join(f.Dir, sumCacheFile) }

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
// the oldest of the same lineage beyond f.Backups. A backup is never
// overwritten: the file is created exclusively, and when its name is taken
// by other bytes (another lineage, after a lost state.json) the copy gets
// a name of its own. Backups of other lineages are never pruned.
func (f *FileStore) backup(cur *State) error {
	dir := filepath.Join(f.Dir, backupDir)
	b, err := json.MarshalIndent(cur, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("back up state serial %d: %w", cur.Serial, err)
	}
	if err := keepBackup(dir, cur, b); err != nil {
		return fmt.Errorf("back up state serial %d: %w", cur.Serial, err)
	}
	names, err := f.backupsOf(cur.Lineage)
	if err != nil {
		return fmt.Errorf("back up state: %w", err)
	}
	keep := f.Backups
	if keep <= 0 {
		keep = defaultBackups
	}
	for len(names) > keep {
		if err := os.Remove(filepath.Join(dir, names[0].name)); err != nil {
			return fmt.Errorf("prune state backup: %w", err)
		}
		names = names[1:]
	}
	return nil
}

// keepBackup writes b under the first free name for cur's serial; a name
// that already holds exactly b is the backup already made.
func keepBackup(dir string, cur *State, b []byte) error {
	short := cur.Lineage
	if len(short) > 8 {
		short = short[:8]
	}
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("state-%08d.json", cur.Serial)
		switch {
		case i == 1:
			name = fmt.Sprintf("state-%08d-%s.json", cur.Serial, short)
		case i > 1:
			name = fmt.Sprintf("state-%08d-%s-%d.json", cur.Serial, short, i)
		}
		path := filepath.Join(dir, name)
		err := createLock(path, b) // exclusive, whole content at once
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		if old, rerr := os.ReadFile(path); rerr == nil && bytes.Equal(old, b) {
			return nil
		}
	}
	return fmt.Errorf("no free backup name for serial %d in %s", cur.Serial, dir)
}

type backupFile struct {
	name   string
	serial uint64
}

// backupsOf lists the backups of a lineage, oldest serial first.
func (f *FileStore) backupsOf(lineage string) ([]backupFile, error) {
	dir := filepath.Join(f.Dir, backupDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []backupFile
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), "state-") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var s struct {
			Lineage string `json:"lineage"`
			Serial  uint64 `json:"serial"`
		}
		if json.Unmarshal(b, &s) != nil || s.Lineage != lineage {
			continue // unreadable or another lineage: never pruned
		}
		out = append(out, backupFile{name: e.Name(), serial: s.Serial})
	}
	slices.SortFunc(out, func(a, b backupFile) int {
		if a.serial != b.serial {
			return cmp.Compare(a.serial, b.serial)
		}
		return strings.Compare(a.name, b.name)
	})
	return out, nil
}

// MaxBackupSerial is the highest serial of lineage among the backups (0
// when there is none), so a state rebuilt in this folder continues above
// it.
func (f *FileStore) MaxBackupSerial(lineage string) (uint64, error) {
	names, err := f.backupsOf(lineage)
	if err != nil || len(names) == 0 {
		return 0, err
	}
	return names[len(names)-1].serial, nil
}

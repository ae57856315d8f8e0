package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Step statuses recorded in the journal.
const (
	StepStarted    = "started"
	StepDone       = "done"
	StepFailed     = "failed"
	StepSkipped    = "skipped"
	StepRolledBack = "rolled-back"
)

// Entry is one line of the journal: a step of an apply changing status.
type Entry struct {
	Time      time.Time `json:"time"`
	Run       string    `json:"run"`  // the apply run (its lock ID)
	Step      string    `json:"step"` // the step's address, e.g. "host.cp-1.component.etcd"
	Host      string    `json:"host,omitempty"`
	Component string    `json:"component,omitempty"`
	Action    string    `json:"action,omitempty"`
	Status    string    `json:"status"`
	Version   string    `json:"version,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// Journal appends entries to a JSON-lines file, synced after every entry so
// that a killed run leaves a journal that says how far it got.
type Journal struct {
	f *os.File
}

// OpenJournal opens (creating 0600) the journal for appending.
func OpenJournal(path string) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	return &Journal{f: f}, nil
}

// Append writes one entry and syncs it to disk.
func (j *Journal) Append(e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error { return j.f.Close() }

// ReadJournal returns every entry in the journal at path, oldest first. A
// torn last line (the run died mid-write) is ignored; any other bad line is
// an error naming its line number.
func ReadJournal(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	defer f.Close()
	var out []Entry
	var pendingErr error
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for n := 1; sc.Scan(); n++ {
		if pendingErr != nil {
			return nil, pendingErr
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			pendingErr = fmt.Errorf("read journal %s line %d: %w", path, n, err)
			continue
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	return out, nil
}

// LastRun returns the entries of the most recent run in entries, and whether
// that run finished every step it started (no step left "started").
func LastRun(entries []Entry) (run []Entry, complete bool) {
	if len(entries) == 0 {
		return nil, true
	}
	id := entries[len(entries)-1].Run
	open := map[string]bool{}
	for _, e := range entries {
		if e.Run != id {
			continue
		}
		run = append(run, e)
		if e.Status == StepStarted {
			open[e.Step] = true
		} else {
			delete(open, e.Step)
		}
	}
	return run, len(open) == 0
}

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
)

// pidRecord is /run/clusterctl/<component>.pid: what a new agent needs to
// adopt the process and to keep counting restarts. PID 0 means no process.
type pidRecord struct {
	PID        int       `json:"pid"`
	StartTime  uint64    `json:"start_time"` // /proc/<pid>/stat field 22
	Generation int       `json:"generation"`
	UnitHash   string    `json:"unit_hash"`
	Dir        string    `json:"dir"` // the generation folder the process was started from
	Since      time.Time `json:"since,omitzero"`
	Restarts   int       `json:"restarts"`
	Started    bool      `json:"started"` // a process was started at least once (the next start is a restart)
	LastExit   *ExitInfo `json:"last_exit,omitempty"`
	Stopped    bool      `json:"stopped,omitempty"` // stopped on request: do not start on agent start
}

func readPIDRecord(path string) (pidRecord, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return pidRecord{}, false, nil
	}
	if err != nil {
		return pidRecord{}, false, err
	}
	var r pidRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return pidRecord{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return r, true, nil
}

func writePIDRecord(path string, r pidRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// pidRecordNames lists the components that have a pid record in the run
// folder.
func pidRecordNames(runDir string) ([]string, error) {
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".pid")
		if ok && e.Type().IsRegular() && ValidName(n) == nil {
			names = append(names, n)
		}
	}
	return names, nil
}

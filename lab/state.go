package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/clusterctl/clusterctl/internal/atomicfile"
)

// File names inside a lab folder. Everything the lab writes there is listed
// here so that Down removes exactly these and nothing a user added.
const (
	stateFile      = "lab.json"
	specFile       = "lab.hcl"
	clientKeyFile  = "id_ed25519"
	knownHostsFile = "known_hosts"
	hostsDir       = "hosts"
)

// State is lab.json: everything `up` created, written before each thing is
// created so that `down` can remove exactly that even after a failed `up`.
type State struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Dir     string `json:"dir"`
	Subnet  string `json:"subnet"`
	// Bridge is the workstation bridge every host's veth is enslaved to;
	// BridgeAddress is the workstation's address on it (prefix form).
	Bridge        string `json:"bridge"`
	BridgeAddress string `json:"bridge_address"`
	// CreatedDir says Up made Dir itself, so Down removes it if it is empty.
	CreatedDir bool `json:"created_dir,omitempty"`
	// Mountpoints are workstation folders Up had to create so per-host
	// folders could be mounted on them (e.g. /etc/kubernetes).
	Mountpoints []string    `json:"mountpoints,omitempty"`
	Hosts       []HostState `json:"hosts"`
}

// HostState is one lab host.
type HostState struct {
	Name    string   `json:"name"`
	Address string   `json:"address"`
	Roles   []string `json:"roles,omitempty"`
	// Bastion, when set, names the host this one is reachable through; it
	// is not on the bridge.
	Bastion string `json:"bastion,omitempty"`
	Netns   string `json:"netns"`
	// Link is the outer end of the host's veth: on the workstation for
	// bridge hosts, in LinkNetns (the bastion's namespace) for hidden hosts.
	Link      string `json:"link"`
	LinkNetns string `json:"link_netns,omitempty"`
	// CgroupRoot is the host's cgroup subtree (the same path in every
	// hierarchy); CgroupDirs are its absolute folders on the workstation.
	CgroupRoot string   `json:"cgroup_root"`
	CgroupDirs []string `json:"cgroup_dirs,omitempty"`
	// PID is the workstation PID of the host's init (PID 1 inside it).
	PID int `json:"pid,omitempty"`
}

// host returns the named host or nil.
func (s *State) host(name string) *HostState {
	for i := range s.Hosts {
		if s.Hosts[i].Name == name {
			return &s.Hosts[i]
		}
	}
	return nil
}

// ErrNoLab means the folder holds no lab (no lab.json).
var ErrNoLab = errors.New("no lab")

func readState(dir string) (*State, error) {
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w (no %s)", dir, ErrNoLab, stateFile)
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Version != 1 || s.ID == "" {
		return nil, fmt.Errorf("%s: not a lab state file of this clusterctl (version %d)", path, s.Version)
	}
	return &s, nil
}

func writeState(dir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, stateFile), append(b, '\n'), 0o600)
}

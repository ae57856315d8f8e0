// Package state keeps what clusterctl knows about a cluster between runs: the
// state file (serial, lineage, per host and component what was installed),
// a lock so two runs never act on one cluster at once, backups of earlier
// serials, and the journal of apply steps. It lives in a folder beside the
// spec, .clusterctl/ by default. The hosts remain the truth: this file is a
// cache of /etc/clusterctl/installed.json on each host plus what only the
// workstation has (the PKI, the journal).
package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// FormatVersion is the version of the state file layout.
const FormatVersion = 1

// State is the content of the state file.
type State struct {
	FormatVersion int                  `json:"format_version"`
	Lineage       string               `json:"lineage"`
	Serial        uint64               `json:"serial"`
	Cluster       string               `json:"cluster"`
	UpdatedAt     time.Time            `json:"updated_at"`
	Hosts         map[string]HostState `json:"hosts"`
}

// HostState is what is installed on one host.
type HostState struct {
	Address    string                    `json:"address"`
	Components map[string]ComponentState `json:"components"`
}

// ComponentState is one component as installed on one host.
type ComponentState struct {
	Version    string    `json:"version"`
	Generation int       `json:"generation"`
	ConfigHash string    `json:"config_hash"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// New returns an empty state with a fresh lineage.
func New(cluster string) *State {
	return &State{
		FormatVersion: FormatVersion,
		Lineage:       newID(),
		Cluster:       cluster,
		Hosts:         map[string]HostState{},
	}
}

// Clone returns a deep copy, so callers can change a state without touching
// the one they read.
func (s *State) Clone() *State {
	if s == nil {
		return nil
	}
	c := *s
	c.Hosts = make(map[string]HostState, len(s.Hosts))
	for name, h := range s.Hosts {
		h.Components = maps.Clone(h.Components)
		c.Hosts[name] = h
	}
	return &c
}

// SetComponent records a component on a host.
func (s *State) SetComponent(host, address, component string, cs ComponentState) {
	if s.Hosts == nil {
		s.Hosts = map[string]HostState{}
	}
	h := s.Hosts[host]
	h.Address = address
	if h.Components == nil {
		h.Components = map[string]ComponentState{}
	}
	h.Components[component] = cs
	s.Hosts[host] = h
}

// Component returns what is recorded for a component on a host.
func (s *State) Component(host, component string) (ComponentState, bool) {
	h, ok := s.Hosts[host]
	if !ok {
		return ComponentState{}, false
	}
	cs, ok := h.Components[component]
	return cs, ok
}

// RemoveComponent forgets a component on a host, and the host when it has
// nothing left.
func (s *State) RemoveComponent(host, component string) {
	h, ok := s.Hosts[host]
	if !ok {
		return
	}
	delete(h.Components, component)
	if len(h.Components) == 0 {
		delete(s.Hosts, host)
		return
	}
	s.Hosts[host] = h
}

// HostNames returns the recorded host names, sorted.
func (s *State) HostNames() []string {
	return slices.Sorted(maps.Keys(s.Hosts))
}

func (s *State) validate() error {
	if s.FormatVersion != FormatVersion {
		return fmt.Errorf("state format version %d is not supported (this clusterctl reads version %d)", s.FormatVersion, FormatVersion)
	}
	if s.Lineage == "" {
		return errors.New("state has no lineage")
	}
	return nil
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the kernel's RNG does not fail
	}
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

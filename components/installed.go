package components

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/clusterctl/clusterctl/plan"
)

// InstalledFormat is the version of installed.json.
const InstalledFormat = 1

// Installed is /etc/clusterctl/installed.json: what clusterctl installed on
// a host and runs there. The hosts are the truth; the local state is a copy.
type Installed struct {
	FormatVersion int                           `json:"format_version"`
	Cluster       string                        `json:"cluster"`
	Host          string                        `json:"host"`
	Components    map[string]InstalledComponent `json:"components"`
}

// InstalledComponent is one component's record on a host.
type InstalledComponent struct {
	Generation
	// Previous generations kept on the host for rollback, newest first.
	Previous []Generation `json:"previous,omitempty"`
}

// Generation is one installed generation of a component.
type Generation struct {
	Number     int      `json:"generation"`
	Version    string   `json:"version"`
	ConfigHash string   `json:"config_hash"`
	Args       []string `json:"args,omitempty"`
	// Files maps every file the generation relies on (binaries, generation
	// files, certificates, kubeconfigs) to its sha256, to find drift.
	Files map[string]string `json:"files,omitempty"`
	// FileAttrs are the attributes of the generation's files
	// (Desired.RecordedAttrs), so plans compare them field by field. A
	// record written before clusterctl recorded them has none.
	FileAttrs *FileAttrs `json:"file_attrs,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// ParseInstalled reads installed.json; empty input is an empty record.
func ParseInstalled(host string, b []byte) (Installed, error) {
	in := Installed{FormatVersion: InstalledFormat, Host: host, Components: map[string]InstalledComponent{}}
	if len(b) == 0 {
		return in, nil
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return Installed{}, fmt.Errorf("%s: %s: %w", host, InstalledFile, err)
	}
	if in.FormatVersion != InstalledFormat {
		return Installed{}, fmt.Errorf("%s: %s has format version %d, this clusterctl reads %d", host, InstalledFile, in.FormatVersion, InstalledFormat)
	}
	if in.Components == nil {
		in.Components = map[string]InstalledComponent{}
	}
	return in, nil
}

// Marshal renders installed.json.
func (in Installed) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Names returns the installed component names, sorted.
func (in Installed) Names() []string { return slices.Sorted(maps.Keys(in.Components)) }

// Object is the plan object of an installed component, with the same
// attributes as Desired.Object: flags, file attributes, config_hash; drift
// lists files found changed on the host.
//
// A generation recorded without file attributes (by a clusterctl from
// before they existed) or with attributes of another FileAttrsVersion has
// its file attributes unknown, not empty: the object is Partial, so the
// plan compares only what it has (flags and config_hash, as before) instead
// of showing every field of every file as created. A real change still
// shows, as config_hash; the next install records the attributes.
func (c InstalledComponent) Object(host, name string, drift []string) plan.Object {
	o := plan.Object{Kind: Kind, Name: name, Host: host, Version: c.Version, Drift: drift}
	if name != AgentComponent {
		o.Attrs = append(o.Attrs, argAttrs(c.Args)...)
		if c.FileAttrs != nil && c.FileAttrs.Version == FileAttrsVersion {
			o.Attrs = append(o.Attrs, c.FileAttrs.Attrs...)
		} else {
			o.Partial = true
		}
		o.Attrs = append(o.Attrs, plan.Attr{Name: "config_hash", Value: c.ConfigHash})
	}
	return o
}

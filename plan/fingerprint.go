package plan

import (
	"fmt"
	"strings"
)

// Fingerprint ties a saved plan to the world it was made from: each spec
// file and variable, the clusterctl binary (the agent hosts will run), each
// bundle artifact the plan installs, each host's facts and installed
// components, and the state serial. Values are digests, never the values
// themselves (a variable may be sensitive).
type Fingerprint struct {
	Files        map[string]string `json:"files"`               // spec file → sha256
	Variables    map[string]string `json:"variables,omitempty"` // variable → sha256 of its value
	Binary       string            `json:"binary"`              // sha256 of clusterctl
	Artifacts    map[string]string `json:"artifacts,omitempty"` // "component version platform file" → sha256
	Hosts        map[string]string `json:"hosts"`
	StateLineage string            `json:"state_lineage,omitempty"`
	StateSerial  uint64            `json:"state_serial"`
}

// Compare returns what changed between f (when the plan was made) and now,
// naming each spec file, variable, artifact and host; nil when nothing did.
func (f Fingerprint) Compare(now Fingerprint) []string {
	var why []string
	why = append(why, compareDigests("spec file", f.Files, now.Files)...)
	why = append(why, compareDigests("variable", f.Variables, now.Variables)...)
	if f.Binary != now.Binary {
		why = append(why, fmt.Sprintf("the clusterctl binary changed (%s, now %s)", short(f.Binary), short(now.Binary)))
	}
	why = append(why, compareDigests("artifact", f.Artifacts, now.Artifacts)...)
	if f.StateLineage != now.StateLineage || f.StateSerial != now.StateSerial {
		why = append(why, fmt.Sprintf("the state changed (serial %d, now %d)", f.StateSerial, now.StateSerial))
	}
	for _, h := range sortedKeys(f.Hosts) {
		n, ok := now.Hosts[h]
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("host %s is no longer in the spec", h))
		case n != f.Hosts[h]:
			why = append(why, fmt.Sprintf("host %s changed (its facts or installed components)", h))
		}
	}
	for _, h := range sortedKeys(now.Hosts) {
		if _, ok := f.Hosts[h]; !ok {
			why = append(why, fmt.Sprintf("host %s was added", h))
		}
	}
	return why
}

func compareDigests(what string, then, now map[string]string) []string {
	var why []string
	for _, k := range sortedKeys(then) {
		n, ok := now[k]
		switch {
		case !ok:
			why = append(why, fmt.Sprintf("%s %s is gone", what, k))
		case n != then[k]:
			why = append(why, fmt.Sprintf("%s %s changed (%s, now %s)", what, k, short(then[k]), short(n)))
		}
	}
	for _, k := range sortedKeys(now) {
		if _, ok := then[k]; !ok {
			why = append(why, fmt.Sprintf("%s %s was added", what, k))
		}
	}
	return why
}

// short abbreviates a digest for messages.
func short(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	if d == "" {
		return "none"
	}
	return "sha256:" + d
}

// Package components knows each Kubernetes component clusterctl installs:
// what it should look like on a host (binaries, config files, certificates,
// the agent unit that runs it), how it is observed, installed, health-gated
// and rolled back. One file per component renders its desired state; the
// rest is shared machinery.
package components

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/plan"
)

// Kind is the plan object kind of components on hosts.
const Kind = "component"

// AgentComponent is the on-host supervisor itself, installed before
// anything else on a host.
const AgentComponent = "agent"

// On-host layout (DESIGN.md "On a host").
const (
	PkgRoot       = "/opt/clusterctl/pkg"
	AgentBinary   = "/opt/clusterctl/bin/clusterctl"
	SumCache      = agent.DefaultSumCache // the agent's cache of file digests (Observe)
	ConfigRoot    = "/etc/clusterctl"
	InstalledFile = "/etc/clusterctl/installed.json"
	LogDir        = "/var/log/clusterctl"
	EtcdDataDir   = "/var/lib/etcd"
)

// Artifact is a file from the bundle cache that a component needs on the
// host, at an immutable, versioned path.
type Artifact struct {
	Component string // bundle component (cache folder)
	Version   string
	Name      string // file name in the bundle
	Local     string // path in the local cache
	SHA256    string
	Size      int64
	Dest      string // absolute path on the host
	Mode      fs.FileMode
}

// File is a file written on the host. Shared files (certificates,
// kubeconfigs) have absolute paths; generation files have paths relative
// to the component's generation folder.
type File struct {
	Path      string
	Data      []byte
	Mode      fs.FileMode
	Sensitive bool // a key or a kubeconfig: never shown, 0600
	// Owner, when set, is the system user (and group of the same name)
	// that owns the file on the host instead of root: a component that
	// does not run as root reads its own keys.
	Owner string
	// SecretKeys names the map keys of a structured file whose values are
	// secrets (an EncryptionConfiguration's "secret"): the plan shows
	// every other value, and these as (sensitive) with their digest.
	SecretKeys []string
}

// SHA256 is the hex digest of the file's content.
func (f File) SHA256() string { return sha256Hex(f.Data) }

// Desired is one component on one host as the spec wants it.
type Desired struct {
	Component string
	Host      string
	Address   string
	Version   string
	Artifacts []Artifact
	Shared    []File     // absolute paths, kept across generations
	Config    []File     // generation files (unit.json is added by Unit)
	Unit      agent.Unit // how the agent runs it
	// Dirs are folders created (with mode) before the component starts.
	Dirs []Dir
	// Users are the system users the component runs as or whose files it
	// has; the installer creates the missing ones (security.go).
	Users []SystemUser
	// SensitiveArgs names flags ("--token") whose values come from
	// sensitive variables: plans show "(sensitive)".
	SensitiveArgs map[string]bool
}

// Dir is a folder the component needs.
type Dir struct {
	Path string
	Mode fs.FileMode
	// Owner, when set, owns the folder and everything in it (chown -R on
	// every install, so data an earlier root-run generation wrote is
	// handed over).
	Owner string
}

// GenerationFiles returns the generation's files, unit.json included, in
// path order.
func (d Desired) GenerationFiles() ([]File, error) {
	if d.Component == AgentComponent {
		return nil, nil // the agent is a binary, not a unit it supervises
	}
	unit, err := agent.EncodeUnit(d.Unit) // validates it, so a bad unit never reaches a host
	if err != nil {
		return nil, fmt.Errorf("%s on %s: render unit: %w", d.Component, d.Host, err)
	}
	// Root only, like every generation file that matters: kube-bench reads
	// unit.json as the component's "pod specification" (CIS 1.1.1-1.1.8,
	// 4.1.1: 600 or tighter).
	files := append(slices.Clone(d.Config), File{Path: agent.UnitFile, Data: unit, Mode: 0o600})
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// ConfigHash digests everything that, when changed, needs a restart: the
// binaries, the generation files and the shared files. Equal hashes mean
// nothing to do.
func (d Desired) ConfigHash() (string, error) {
	gen, err := d.GenerationFiles()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, a := range d.Artifacts {
		fmt.Fprintf(h, "artifact %s %s\n", a.Dest, a.SHA256)
	}
	for _, f := range gen {
		fmt.Fprintf(h, "gen %s %o %s\n", f.Path, f.Mode, f.SHA256())
	}
	shared := slices.Clone(d.Shared)
	sort.Slice(shared, func(i, j int) bool { return shared[i].Path < shared[j].Path })
	for _, f := range shared {
		fmt.Fprintf(h, "shared %s %o %s\n", f.Path, f.Mode, f.SHA256())
		if f.Owner != "" {
			fmt.Fprintf(h, "owner %s %s\n", f.Path, f.Owner)
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Object is the plan object for d: version, config hash and one attribute
// per command-line flag, so a plan shows which flag changed.
func (d Desired) Object() (plan.Object, error) {
	hash, err := d.ConfigHash()
	if err != nil {
		return plan.Object{}, err
	}
	o := plan.Object{Kind: Kind, Name: d.Component, Host: d.Host, Version: d.Version}
	if d.Component == AgentComponent {
		return o, nil // the agent's version is its binary's digest
	}
	for _, a := range argAttrs(d.Unit.Args) {
		a.Sensitive = d.SensitiveArgs[a.Name]
		o.Attrs = append(o.Attrs, a)
	}
	o.Attrs = append(o.Attrs, d.fileAttrs()...) // filediff.go
	o.Attrs = append(o.Attrs, plan.Attr{Name: "config_hash", Value: hash})
	return o, nil
}

// argAttrs turns "--flag=value" arguments into attributes named "--flag";
// positional arguments (a subcommand) become one attribute "command".
func argAttrs(args []string) []plan.Attr {
	var out []plan.Attr
	var positional []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			positional = append(positional, a)
			continue
		}
		name, value, _ := strings.Cut(a, "=")
		out = append(out, plan.Attr{Name: name, Value: value})
	}
	if len(positional) > 0 {
		out = append([]plan.Attr{{Name: "command", Value: strings.Join(positional, " ")}}, out...)
	}
	return out
}

// pkgPath is where an artifact file lives on a host.
func pkgPath(component, version, name string) string {
	return path.Join(PkgRoot, component, version, name)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// artifacts resolves files of a bundle artifact to local cache paths and
// host destinations.
func artifacts(cache *bundle.Cache, p bundle.Platform, component, version string, names ...string) ([]Artifact, error) {
	var out []Artifact
	for _, n := range names {
		local, sum, err := cache.Lookup(component, version, p, n)
		if err != nil {
			return nil, fmt.Errorf("%s %s (%s): %w (fill the cache with `clusterctl bundle build`)", component, version, p, err)
		}
		out = append(out, Artifact{Component: component, Version: version, Name: n, Local: local, SHA256: sum,
			Dest: pkgPath(component, version, n), Mode: 0o755})
	}
	return out, nil
}

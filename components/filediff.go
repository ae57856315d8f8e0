package components

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"gopkg.in/yaml.v3"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/plan"
)

// File attributes: a plan shows a change to a component's files field by
// field, the way it shows a changed flag. Each structured generation file
// (YAML, JSON, TOML, by extension) is flattened into one attribute per leaf
// value, named "<file>:<path>":
//
//	kubelet-config.yaml:evictionHard."memory.available" = "100Mi"
//	cni.conflist:plugins[0].ipam.ranges[0][0].subnet   = "10.244.1.0/24"
//	config.toml:plugins."io.containerd.cri.v1.images".snapshotter = "overlayfs"
//
// Path segments are map keys joined by dots (quoted when they hold anything
// but letters, digits, '_', '-' and '/', so a key with a dot is not read as
// two) and list indexes in brackets. Values are the scalar's text (strings
// unquoted, as flags are); an empty map or list is a leaf "{}" or "[]" so
// that emptying one shows. Comments and formatting are not attributes.
//
// A file that is not structured, does not parse, or is sensitive (a key or
// a kubeconfig) gets one attribute "<file>:sha256", marked sensitive for the
// latter so plans print "(sensitive)". Generation files are named by their
// path in the generation folder, shared files (certificates, kubeconfigs)
// by their absolute path: two shared files may share a base name
// (pki/ca.crt and pki/etcd/ca.crt). unit.json is left out: its flags are
// attributes already and the rest is caught by config_hash, as are the
// binaries.

// FileAttrsVersion is the version of the naming and rendering rules above.
// Attributes recorded by another version are not compared (see
// InstalledComponent.Object): a rule change must not show every field of
// every cluster as changed.
const FileAttrsVersion = 1

// FileAttrs is what installed.json records of a generation's files: the
// attributes fileAttrs returned when it was installed.
type FileAttrs struct {
	Version int         `json:"version"`
	Attrs   []plan.Attr `json:"attrs"`
}

// RecordedAttrs is what the installer records in the generation, so the
// observed object carries the same file attributes as the desired one.
func (d Desired) RecordedAttrs() *FileAttrs {
	if d.Component == AgentComponent {
		return nil
	}
	return &FileAttrs{Version: FileAttrsVersion, Attrs: d.fileAttrs()}
}

// fileAttrs returns the attributes of d's generation files (in path order)
// then of its shared files (in path order).
func (d Desired) fileAttrs() []plan.Attr {
	if d.Component == AgentComponent {
		return nil
	}
	attrs := []plan.Attr{}
	for _, group := range [][]File{d.Config, d.Shared} {
		files := slices.Clone(group)
		sort.SliceStable(files, func(i, j int) bool { return files[i].Path < files[j].Path })
		for _, f := range files {
			attrs = append(attrs, FileAttrList(f)...)
		}
	}
	// The one field of unit.json that is no flag: who the component runs
	// as. Only set where it is not root, so other records stay as they were.
	if d.Unit.User != "" {
		attrs = append(attrs, plan.Attr{Name: agent.UnitFile + ":user", Value: d.Unit.User})
	}
	return attrs
}

// FileAttrList flattens one file into attributes (see above).
func FileAttrList(f File) []plan.Attr {
	digest := []plan.Attr{{Name: f.Path + ":sha256", Value: "sha256:" + f.SHA256(), Sensitive: f.Sensitive}}
	if f.Sensitive {
		return digest
	}
	var leaves []leaf
	var err error
	switch strings.ToLower(path.Ext(f.Path)) {
	case ".yaml", ".yml":
		leaves, err = flattenYAML(f.Data)
	case ".json", ".conflist":
		leaves, err = flattenJSON(f.Data)
	case ".toml":
		leaves, err = flattenTOML(f.Data)
	default:
		return digest
	}
	if err != nil {
		return digest
	}
	out := make([]plan.Attr, 0, len(leaves))
	seen := map[string]bool{}
	for _, l := range leaves {
		name := f.Path + ":" + l.path
		if seen[name] {
			return digest // a duplicate key: the attributes would not say which one counts
		}
		seen[name] = true
		if secretLeaf(l.path, f.SecretKeys) {
			// The digest still shows that it changed; the value never shows.
			out = append(out, plan.Attr{Name: name, Value: "sha256:" + sha256Hex([]byte(l.value)), Sensitive: true})
			continue
		}
		out = append(out, plan.Attr{Name: name, Value: l.value})
	}
	return out
}

type leaf struct{ path, value string }

// secretLeaf reports whether the last map key of a leaf's path is one of
// keys.
func secretLeaf(p string, keys []string) bool {
	for _, k := range keys {
		if p == k || strings.HasSuffix(p, "."+k) {
			return true
		}
	}
	return false
}

// key renders one map key as a path segment after prefix.
func key(prefix, k string) string {
	seg := k
	if k == "" || strings.IndexFunc(k, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '/')
	}) >= 0 {
		seg = strconv.Quote(k)
	}
	if prefix == "" {
		return seg
	}
	return prefix + "." + seg
}

func index(prefix string, i int) string { return prefix + "[" + strconv.Itoa(i) + "]" }

// rootPath names a document that is a scalar rather than a map or list.
func rootPath(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// flattenYAML walks a single-document YAML file in document order.
func flattenYAML(b []byte) ([]leaf, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("more than one YAML document")
	}
	var out []leaf
	var walk func(n *yaml.Node, p string, depth int) error
	walk = func(n *yaml.Node, p string, depth int) error {
		if depth > 100 {
			return fmt.Errorf("YAML nested too deeply")
		}
		switch n.Kind {
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			return walk(n.Content[0], p, depth+1)
		case yaml.AliasNode:
			return walk(n.Alias, p, depth+1)
		case yaml.MappingNode:
			if len(n.Content) == 0 {
				out = append(out, leaf{rootPath(p), "{}"})
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Kind != yaml.ScalarNode {
					return fmt.Errorf("a YAML key that is not a scalar")
				}
				if err := walk(n.Content[i+1], key(p, k.Value), depth+1); err != nil {
					return err
				}
			}
		case yaml.SequenceNode:
			if len(n.Content) == 0 {
				out = append(out, leaf{rootPath(p), "[]"})
			}
			for i, c := range n.Content {
				if err := walk(c, index(p, i), depth+1); err != nil {
					return err
				}
			}
		case yaml.ScalarNode:
			v := n.Value
			if n.ShortTag() == "!!null" {
				v = "null"
			}
			out = append(out, leaf{rootPath(p), v})
		}
		return nil
	}
	if err := walk(&doc, "", 0); err != nil {
		return nil, err
	}
	return out, nil
}

// flattenJSON walks a JSON file in document order.
func flattenJSON(b []byte) ([]leaf, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out []leaf
	var value func(p string, depth int) error
	value = func(p string, depth int) error {
		if depth > 100 {
			return fmt.Errorf("JSON nested too deeply")
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				n := 0
				for dec.More() {
					kt, err := dec.Token()
					if err != nil {
						return err
					}
					if err := value(key(p, kt.(string)), depth+1); err != nil {
						return err
					}
					n++
				}
				if n == 0 {
					out = append(out, leaf{rootPath(p), "{}"})
				}
			case '[':
				n := 0
				for dec.More() {
					if err := value(index(p, n), depth+1); err != nil {
						return err
					}
					n++
				}
				if n == 0 {
					out = append(out, leaf{rootPath(p), "[]"})
				}
			}
			_, err := dec.Token() // the closing delimiter
			return err
		case string:
			out = append(out, leaf{rootPath(p), t})
		case json.Number:
			out = append(out, leaf{rootPath(p), t.String()})
		case bool:
			out = append(out, leaf{rootPath(p), strconv.FormatBool(t)})
		case nil:
			out = append(out, leaf{rootPath(p), "null"})
		}
		return nil
	}
	if err := value("", 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return out, nil
}

// flattenTOML walks a TOML file. TOML tables decode to Go maps, which keep
// no order: keys are taken in sorted order.
func flattenTOML(b []byte) ([]leaf, error) {
	var doc map[string]any
	if err := toml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var out []leaf
	var walk func(v any, p string)
	walk = func(v any, p string) {
		switch t := v.(type) {
		case map[string]any:
			if len(t) == 0 {
				out = append(out, leaf{rootPath(p), "{}"})
			}
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(t[k], key(p, k))
			}
		case []any:
			if len(t) == 0 {
				out = append(out, leaf{rootPath(p), "[]"})
			}
			for i, e := range t {
				walk(e, index(p, i))
			}
		case string:
			out = append(out, leaf{rootPath(p), t})
		case bool:
			out = append(out, leaf{rootPath(p), strconv.FormatBool(t)})
		case int64:
			out = append(out, leaf{rootPath(p), strconv.FormatInt(t, 10)})
		case float64:
			out = append(out, leaf{rootPath(p), strconv.FormatFloat(t, 'g', -1, 64)})
		case time.Time:
			out = append(out, leaf{rootPath(p), t.Format(time.RFC3339Nano)})
		default:
			out = append(out, leaf{rootPath(p), fmt.Sprint(t)}) // local dates and times
		}
	}
	walk(doc, "")
	return out, nil
}

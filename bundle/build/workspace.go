package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/version"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/clusterctl/clusterctl/bundle"
)

// moduleInfo is what `go mod download -json` says about one module version.
type moduleInfo struct {
	Path    string
	Version string
	Info    string // path of the .info file: {"Version", "Time"}
	GoMod   string // path of the .mod file
	Dir     string
	Error   string
}

// download fetches module@version through the module proxy (or the local
// module cache) and returns where it is and when the tag was made.
func (b *Builder) download(ctx context.Context, mod, version string) (moduleInfo, time.Time, error) {
	cmd := exec.CommandContext(ctx, b.goCmd(), "mod", "download", "-json", mod+"@"+version)
	cmd.Dir = os.TempDir() // outside any module, so no go.mod is consulted
	cmd.Env = append(os.Environ(), "GO111MODULE=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var mi moduleInfo
	if jerr := json.Unmarshal(out, &mi); jerr == nil && mi.Error != "" {
		return mi, time.Time{}, fmt.Errorf("downloading %s@%s: %s", mod, version, mi.Error)
	}
	if err != nil {
		return mi, time.Time{}, fmt.Errorf("downloading %s@%s: %w: %s", mod, version, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, &mi); err != nil {
		return mi, time.Time{}, fmt.Errorf("downloading %s@%s: reading go's answer: %w", mod, version, err)
	}
	var info struct{ Time time.Time }
	if data, err := os.ReadFile(mi.Info); err == nil {
		_ = json.Unmarshal(data, &info)
	}
	return mi, info.Time, nil
}

// workspace prepares a generated module under WorkRoot that requires the
// recipe's upstream modules at its tag and nothing else, so that `go build
// <upstream>/cmd/...` there builds upstream's command with upstream's
// dependency versions. Upstream's replace directives do not apply to a
// dependency, so they are carried over: a replace pointing into upstream's
// own tree (Kubernetes' staging modules, etcd's sub-modules) becomes a
// replace by the published version that localVersion names; any other
// replace is copied as is. godebug and exclude lines are copied too, so the
// binary behaves as upstream's own build.
func (b *Builder) workspace(ctx context.Context, r *goRecipe) (dir string, tagTime time.Time, err error) {
	var gomods []upstreamGoMod
	for _, mod := range r.modules {
		if err := module.Check(mod, r.version); err != nil {
			return "", time.Time{}, err
		}
		mi, t, err := b.download(ctx, mod, r.version)
		if err != nil {
			return "", time.Time{}, err
		}
		data, err := os.ReadFile(mi.GoMod)
		if err != nil {
			return "", time.Time{}, err
		}
		gomods = append(gomods, upstreamGoMod{path: mod, file: mi.GoMod, data: data})
		if t.After(tagTime) {
			tagTime = t
		}
	}
	gomod, err := generateGoMod(r, gomods)
	if err != nil {
		return "", time.Time{}, err
	}
	dir = filepath.Join(b.WorkRoot, r.name+"-"+r.version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", time.Time{}, err
	}
	path := filepath.Join(dir, "go.mod")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, gomod) {
		return dir, tagTime, nil // keep go.sum from the last build
	}
	if err := bundle.WriteFileAtomic(path, gomod, 0o644); err != nil {
		return "", time.Time{}, err
	}
	os.Remove(filepath.Join(dir, "go.sum"))
	return dir, tagTime, nil
}

// upstreamGoMod is the go.mod of one upstream module at the pinned tag.
type upstreamGoMod struct {
	path string // module path
	file string // where it was read, for messages
	data []byte
}

// generateGoMod writes the go.mod of a build workspace from upstream's go.mod
// files.
func generateGoMod(r *goRecipe, ups []upstreamGoMod) ([]byte, error) {
	goVersion := "1.22"
	var godebug, excludes []string
	replaces := map[string]string{} // "old [version]" -> "new [version]"
	var order []string
	for _, u := range ups {
		f, err := modfile.Parse(u.file, u.data, nil)
		if err != nil {
			return nil, fmt.Errorf("parsing %s@%s's go.mod: %w", u.path, r.version, err)
		}
		if f.Go != nil && version.Compare("go"+f.Go.Version, "go"+goVersion) > 0 {
			goVersion = f.Go.Version
		}
		for _, g := range f.Godebug {
			if line := g.Key + "=" + g.Value; !slices.Contains(godebug, line) {
				godebug = append(godebug, line)
			}
		}
		for _, ex := range f.Exclude {
			if line := ex.Mod.Path + " " + ex.Mod.Version; !slices.Contains(excludes, line) {
				excludes = append(excludes, line)
			}
		}
		for _, rep := range f.Replace {
			old := strings.TrimSpace(rep.Old.Path + " " + rep.Old.Version)
			newPath, newVersion := rep.New.Path, rep.New.Version
			if modfile.IsDirectoryPath(newPath) {
				var v string
				ok := false
				if r.localVersion != nil {
					v, ok = r.localVersion(rep.Old.Path)
				}
				if !ok {
					return nil, fmt.Errorf("%s@%s's go.mod replaces %s by its folder %s, and the recipe does not say which published version stands for it", u.path, r.version, rep.Old.Path, newPath)
				}
				if v == "" {
					continue
				}
				newPath, newVersion = rep.Old.Path, v
			}
			target := newPath + " " + newVersion
			if prev, ok := replaces[old]; ok {
				if prev != target {
					return nil, fmt.Errorf("the go.mod files of %s@%s disagree on the replacement of %s: %s or %s", strings.Join(r.modules, ", "), r.version, old, prev, target)
				}
				continue
			}
			replaces[old] = target
			order = append(order, old)
		}
	}
	var w strings.Builder
	fmt.Fprintf(&w, "// Generated by clusterctl bundle build from the go.mod of %s at %s. Do not edit.\n", strings.Join(r.modules, ", "), r.version)
	fmt.Fprintf(&w, "module clusterctl.build/%s\n\ngo %s\n", r.name, goVersion)
	for _, g := range godebug {
		fmt.Fprintf(&w, "\ngodebug %s\n", g)
	}
	w.WriteString("\nrequire (\n")
	for _, m := range r.modules {
		fmt.Fprintf(&w, "\t%s %s\n", m, r.version)
	}
	w.WriteString(")\n")
	if len(order) > 0 {
		sort.Strings(order)
		w.WriteString("\nreplace (\n")
		for _, old := range order {
			fmt.Fprintf(&w, "\t%s => %s\n", old, replaces[old])
		}
		w.WriteString(")\n")
	}
	if len(excludes) > 0 {
		w.WriteString("\nexclude (\n")
		for _, ex := range excludes {
			fmt.Fprintf(&w, "\t%s\n", ex)
		}
		w.WriteString(")\n")
	}
	out := []byte(w.String())
	if _, err := modfile.Parse("generated go.mod", out, nil); err != nil {
		return nil, fmt.Errorf("generated go.mod for %s: %w", r.name, err)
	}
	return out, nil
}

package components

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Installer installs components on hosts through their agents.
type Installer struct {
	Cluster string
	// GateTimeout bounds each health gate (default 120 s).
	GateTimeout time.Duration
	// KeepGenerations is how many earlier generations stay on a host for
	// rollback (default 2).
	KeepGenerations int
	// OnUpload is told about every uploaded artifact (bytes sent; 0 when
	// the host already had it).
	OnUpload func(host, dest string, sent int64)
	// BeforeStart, when set, is called before a component's first start on
	// a host, with its files in place; an error stops the install. The
	// executor starts the members of a new etcd cluster together with it.
	BeforeStart func(ctx context.Context, host, component string) error

	mu    sync.Mutex
	hosts map[string]*sync.Mutex // serialises installed.json updates per host
}

func (in *Installer) hostLock(host string) *sync.Mutex {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.hosts == nil {
		in.hosts = map[string]*sync.Mutex{}
	}
	m, ok := in.hosts[host]
	if !ok {
		m = &sync.Mutex{}
		in.hosts[host] = m
	}
	return m
}

// ErrGateFailed means a component did not become healthy in time; the
// previous generation was put back.
var ErrGateFailed = errors.New("health gate failed")

// GateError reports a failed health gate with what the agent said and
// what the rollback did.
type GateError struct {
	Host, Component string
	Generation      int
	Output          string // the agent's report: last probe error, last log lines
	RolledBackTo    int    // 0 when there was nothing to roll back to
	RollbackErr     error
}

func (e *GateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s: generation %d did not become healthy", e.Component, e.Host, e.Generation)
	switch {
	case e.RollbackErr != nil:
		fmt.Fprintf(&b, "; rolling back failed too: %v", e.RollbackErr)
	case e.RolledBackTo > 0:
		fmt.Fprintf(&b, "; rolled back to generation %d, which is healthy", e.RolledBackTo)
	default:
		b.WriteString("; it was stopped (there is no earlier generation)")
	}
	if out := strings.TrimSpace(e.Output); out != "" {
		b.WriteString("\n" + indent(out, "    "))
	}
	return b.String()
}

func (e *GateError) Unwrap() error { return ErrGateFailed }

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func (in *Installer) gateTimeout() time.Duration {
	if in.GateTimeout > 0 {
		return in.GateTimeout
	}
	return 120 * time.Second
}

func (in *Installer) keep() int {
	if in.KeepGenerations > 0 {
		return in.KeepGenerations
	}
	return 2
}

// InstallAgent puts the clusterctl binary on the host and makes sure the
// agent runs it. A changed binary restarts the agent, which adopts the
// running components without restarting them.
func (in *Installer) InstallAgent(ctx context.Context, h Host, d Desired) error {
	a, l := d.Artifacts[0], LayoutOf(h)
	if _, err := h.Run(ctx, "mkdir -p "+shellJoin(l.Path(path.Dir(AgentBinary)), l.Path(ConfigRoot), l.Path(LogDir))+" && chmod 0700 "+shellQuote(l.Path(ConfigRoot))); err != nil {
		return fmt.Errorf("%s: prepare folders: %w", h.Name(), err)
	}
	sent, err := h.Upload(ctx, a.Local, l.Path(a.Dest), a.SHA256, a.Mode)
	if err != nil {
		return fmt.Errorf("%s: upload the agent: %w", h.Name(), err)
	}
	if in.OnUpload != nil {
		in.OnUpload(h.Name(), a.Dest, sent)
	}
	if err := (AgentClient{h}).StartAgent(ctx); err != nil {
		return fmt.Errorf("start the agent: %w", err)
	}
	return in.record(ctx, h, AgentComponent, func(inst *Installed) {
		inst.Components[AgentComponent] = InstalledComponent{Generation: Generation{
			Number: 1, Version: d.Version, Files: map[string]string{a.Dest: a.SHA256}, UpdatedAt: time.Now().UTC(),
		}}
	})
}

// Install makes a component on a host match d: uploads what is missing,
// writes a new generation, switches the agent to it and waits for its
// health gate. When the gate fails, the previous generation is switched
// back and gated again, and a *GateError says what happened.
func (in *Installer) Install(ctx context.Context, h Host, d Desired, current *InstalledComponent) error {
	name, l := h.Name(), LayoutOf(h)
	step := func(what string, err error) error {
		return fmt.Errorf("%s on %s: %s: %w", d.Component, name, what, err)
	}

	// compDir and genDir below are paths on the layout; files records host paths.
	compDir := l.Path(path.Join(ConfigRoot, d.Component))
	mk := []string{compDir, l.Path(LogDir)}
	for _, a := range d.Artifacts {
		mk = append(mk, l.Path(path.Dir(a.Dest)))
	}
	for _, f := range d.Shared {
		mk = append(mk, l.Path(path.Dir(f.Path)))
	}
	// Users and owners are the host's: a rooted layout (a test host on the
	// workstation) has no users of its own and everything stays the
	// caller's, who is not root and needs the search bit on its folders.
	owned := l.Root == ""
	cmd := "mkdir -p " + shellJoin(uniq(mk)...)
	for _, dir := range d.Dirs {
		p, mode := shellQuote(l.Path(dir.Path)), dir.Mode
		if !owned {
			mode |= 0o700
		}
		cmd += " && mkdir -p " + p + " && chmod " + strconv.FormatUint(uint64(mode), 8) + " " + p
	}
	if owned && len(d.Users) > 0 {
		cmd = ensureUsersScript(d.Users) + cmd
	}
	if own := ownershipScript(l, d.Dirs, nil); owned && own != "" {
		cmd += " && " + own
	}
	if _, err := h.Run(ctx, cmd); err != nil {
		return step("prepare folders", err)
	}

	files := map[string]string{}
	for _, a := range d.Artifacts {
		sent, err := h.Upload(ctx, a.Local, l.Path(a.Dest), a.SHA256, a.Mode)
		if err != nil {
			return step("upload "+a.Name, err)
		}
		if in.OnUpload != nil {
			in.OnUpload(name, a.Dest, sent)
		}
		files[a.Dest] = a.SHA256
	}
	if err := writeChanged(ctx, h, placed(l.Path("/"), d.Shared)); err != nil {
		return step("write certificates and kubeconfigs", err)
	}
	// A file written anew is root's: hand it over again.
	if own := ownershipScript(l, nil, d.Shared); owned && own != "" {
		if _, err := h.Run(ctx, own); err != nil {
			return step("hand over files", err)
		}
	}
	for _, f := range d.Shared {
		files[f.Path] = f.SHA256()
	}

	genFiles, err := d.GenerationFiles()
	if err != nil {
		return err
	}
	// A new generation folder, numbered after any that exist (installed.json
	// may be gone while the folders are not) — unless the generation that
	// `current` points at already has exactly these files: a run killed
	// after switching but before recording left it there, and using it
	// again spares a second restart.
	out, err := h.Run(ctx, "ls -1 "+shellQuote(compDir)+"; echo; readlink "+shellQuote(path.Join(compDir, "current"))+" || true")
	if err != nil {
		return step("list generations", err)
	}
	listing, link, _ := strings.Cut(string(out), "\n\n")
	gens := generations(listing)
	gen := 1
	if len(gens) > 0 {
		gen = gens[len(gens)-1] + 1
	}
	if current != nil && current.Number >= gen {
		gen = current.Number + 1
	}
	if n, err := strconv.Atoi(strings.TrimSpace(link)); err == nil && n > 0 && (current == nil || n != current.Number) {
		same, err := sameFiles(ctx, h, path.Join(compDir, strconv.Itoa(n)), genFiles)
		if err != nil {
			return step("compare the current generation", err)
		}
		if same {
			gen = n
		}
	}
	genDir := path.Join(compDir, strconv.Itoa(gen))
	if _, err := h.Run(ctx, "mkdir -p "+shellQuote(genDir)); err != nil {
		return step("create generation folder", err)
	}
	if err := writeChanged(ctx, h, placed(genDir, genFiles)); err != nil {
		return step("write generation "+strconv.Itoa(gen), err)
	}
	for _, f := range genFiles {
		files[l.HostPath(path.Join(genDir, f.Path))] = f.SHA256()
	}
	hash, err := d.ConfigHash()
	if err != nil {
		return err
	}

	if current == nil && in.BeforeStart != nil {
		if err := in.BeforeStart(ctx, name, d.Component); err != nil {
			return step("wait to start with the other members", err)
		}
	}
	if err := in.switchTo(ctx, h, d.Component, gen); err != nil {
		return step(fmt.Sprintf("switch to generation %d", gen), err)
	}
	if gateOut, gerr := in.gate(ctx, h, d.Component, gen); gerr != nil {
		ge := &GateError{Host: name, Component: d.Component, Generation: gen, Output: gateOut}
		if current != nil && current.Number > 0 {
			ge.RolledBackTo = current.Number
			if err := in.switchTo(ctx, h, d.Component, current.Number); err != nil {
				ge.RollbackErr = err
			} else if out, err := in.gate(ctx, h, d.Component, current.Number); err != nil {
				ge.RollbackErr = fmt.Errorf("generation %d is not healthy either: %s", current.Number, strings.TrimSpace(out))
			}
		} else {
			ge.RollbackErr = in.stop(ctx, h, d.Component)
		}
		return ge
	}

	now := time.Now().UTC()
	rec := Generation{Number: gen, Version: d.Version, ConfigHash: hash, Args: d.Unit.Args, Files: files, FileAttrs: d.RecordedAttrs(), UpdatedAt: now}
	// Generation folders that are neither current nor kept are removed.
	keep := map[int]bool{gen: true}
	err = in.record(ctx, h, d.Component, func(inst *Installed) {
		old, had := inst.Components[d.Component]
		ic := InstalledComponent{Generation: rec}
		if had && old.Number > 0 {
			ic.Previous = append([]Generation{old.Generation}, old.Previous...)
		}
		ic.Previous = ic.Previous[:min(len(ic.Previous), in.keep())]
		for _, g := range ic.Previous {
			keep[g.Number] = true
		}
		inst.Components[d.Component] = ic
	})
	if err != nil {
		return step("record the installation", err)
	}
	var rm []string
	for _, g := range gens {
		if !keep[g] {
			rm = append(rm, path.Join(compDir, strconv.Itoa(g)))
		}
	}
	if len(rm) > 0 {
		if _, err := h.Run(ctx, "rm -rf -- "+shellJoin(rm...)); err != nil {
			return step("prune old generations", err)
		}
	}
	return nil
}

// switchTo points the component's current link at a generation and tells
// the agent to reload: only that component restarts.
func (in *Installer) switchTo(ctx context.Context, h Host, component string, gen int) error {
	return AgentClient{h}.Switch(ctx, component, gen)
}

// stop removes the component's current link so the agent stops it.
func (in *Installer) stop(ctx context.Context, h Host, component string) error {
	return AgentClient{h}.Unlink(ctx, component)
}

// gate waits until the agent reports the component healthy on gen. On
// failure it returns the agent's report (state, last probe error, log
// lines).
func (in *Installer) gate(ctx context.Context, h Host, component string, gen int) (string, error) {
	return AgentClient{h}.WaitHealthy(ctx, component, gen, in.gateTimeout())
}

// Remove stops a component and removes its generations and record. Its
// binaries stay in the versioned package folder.
func (in *Installer) Remove(ctx context.Context, h Host, component string) error {
	if err := in.stop(ctx, h, component); err != nil {
		return fmt.Errorf("%s on %s: stop: %w", component, h.Name(), err)
	}
	if _, err := h.Run(ctx, "rm -rf -- "+shellQuote(LayoutOf(h).Path(path.Join(ConfigRoot, component)))); err != nil {
		return fmt.Errorf("%s on %s: remove its configuration: %w", component, h.Name(), err)
	}
	return in.record(ctx, h, component, func(inst *Installed) { delete(inst.Components, component) })
}

func (in *Installer) read(ctx context.Context, h Host) (Installed, error) {
	return readInstalled(ctx, h)
}

// readInstalled reads a host's installed.json.
func readInstalled(ctx context.Context, h Host) (Installed, error) {
	out, err := h.Run(ctx, "cat "+shellQuote(LayoutOf(h).Path(InstalledFile))+" 2>/dev/null || true")
	if err != nil {
		return Installed{}, err
	}
	return ParseInstalled(h.Name(), out)
}

// record updates installed.json on the host under a per-host lock.
func (in *Installer) record(ctx context.Context, h Host, component string, change func(*Installed)) error {
	m := in.hostLock(h.Name())
	m.Lock()
	defer m.Unlock()
	inst, err := in.read(ctx, h)
	if err != nil {
		return fmt.Errorf("%s: read %s: %w", h.Name(), InstalledFile, err)
	}
	inst.FormatVersion = InstalledFormat
	inst.Cluster = in.Cluster
	inst.Host = h.Name()
	change(&inst)
	b, err := inst.Marshal()
	if err != nil {
		return err
	}
	if err := h.WriteFile(ctx, LayoutOf(h).Path(InstalledFile), b, 0o600); err != nil {
		return fmt.Errorf("%s: write %s: %w", h.Name(), InstalledFile, err)
	}
	return nil
}

// writeChanged writes the files whose content differs on the host, after
// one round trip to learn their digests.
func writeChanged(ctx context.Context, h Host, files []File) error {
	if len(files) == 0 {
		return nil
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	out, err := h.Run(ctx, "sha256sum -- "+shellJoin(paths...)+" 2>/dev/null || true")
	if err != nil {
		return err
	}
	have := parseSHA256Sum(out)
	for _, f := range files {
		if have[f.Path] == f.SHA256() {
			continue
		}
		if err := h.WriteFile(ctx, f.Path, f.Data, f.Mode); err != nil {
			return fmt.Errorf("write %s: %w", f.Path, err)
		}
	}
	return nil
}

// generations parses `ls` of a component folder into sorted numbers.
func generations(ls string) []int {
	var out []int
	for _, f := range strings.Fields(ls) {
		if n, err := strconv.Atoi(f); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

func uniq(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// placed returns generation files at their paths inside dir.
func placed(dir string, files []File) []File {
	out := make([]File, len(files))
	for i, f := range files {
		f.Path = path.Join(dir, f.Path)
		out[i] = f
	}
	return out
}

// sameFiles reports whether dir on the host holds exactly files (same
// names, same content).
func sameFiles(ctx context.Context, h Host, dir string, files []File) (bool, error) {
	out, err := h.Run(ctx, "cd "+shellQuote(dir)+" 2>/dev/null && find . -maxdepth 1 -type f -exec sha256sum {} + || true")
	if err != nil {
		return false, err
	}
	have := map[string]string{}
	for p, sum := range parseSHA256Sum(out) {
		have[strings.TrimPrefix(p, "./")] = sum
	}
	if len(have) != len(files) {
		return false, nil
	}
	for _, f := range files {
		if have[f.Path] != f.SHA256() {
			return false, nil
		}
	}
	return true, nil
}

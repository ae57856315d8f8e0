package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/clusterctl/clusterctl/state"
)

// Session is one plan or apply against a cluster: the spec, the local
// state folder, the artifact cache and open connections to the hosts.
type Session struct {
	Dir         string // the spec folder
	Cluster     *spec.Cluster
	Store       *state.FileStore
	Cache       *bundle.Cache
	Parallelism int
	GateTimeout time.Duration
	// Log receives progress lines (nil: discarded).
	Log io.Writer
	// Events, if set, receives the same progress as records (apply -json).
	Events func(Event)
	// Passphrase, if set, is asked for an encrypted identity file whose
	// passphrase is not in identity_passphrase_env.
	Passphrase func(keyFile string) ([]byte, error)

	conns     map[string]*Conn
	agentBin  components.AgentBinaryFile
	logMu     sync.Mutex
	retired   []spec.Host   // connected hosts the state records and the spec no longer names
	warnings  []string      // for the plan
	slots     chan struct{} // the run-wide limit on host operations
	slotsOnce sync.Once
}

// slot waits for one of the run's Parallelism host-operation slots; the
// caller releases it when its operation on the host is over. Every fan-out
// of the session (observing, applying, destroying, rolling back) goes
// through it, so -parallelism bounds the whole run, not each step.
func (s *Session) slot(ctx context.Context) (func(), error) {
	s.slotsOnce.Do(func() { s.slots = make(chan struct{}, s.parallelism()) })
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Session) logf(format string, args ...any) {
	if s.Log == nil {
		return
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.Log, format+"\n", args...)
}

func (s *Session) parallelism() int {
	if s.Parallelism > 0 {
		return s.Parallelism
	}
	return 10
}

// Open connects to every host of the spec. It fails, naming each host that
// could not be reached, before anything is read or changed.
func (s *Session) Open(ctx context.Context) error {
	bin, err := components.LocalAgentBinary()
	if err != nil {
		return err
	}
	s.agentBin = bin
	retired, err := s.retiredHosts()
	if err != nil {
		return err
	}
	conns, err := Connect(ctx, s.Cluster.Hosts(), s.parallelism(), s.Passphrase)
	s.conns = conns
	if err != nil {
		return fmt.Errorf("cannot reach every host:\n%w", err)
	}
	// A host that left the spec is reached with the spec's ssh block, to
	// remove what clusterctl put there. One that cannot be reached is left
	// as it is, with a warning: it may be gone for good.
	rc, err := Connect(ctx, retired, s.parallelism(), s.Passphrase)
	for _, h := range retired {
		if c, ok := rc[h.Name]; ok {
			s.conns[h.Name] = c
			s.retired = append(s.retired, h)
		}
	}
	if err != nil {
		s.warnings = append(s.warnings, fmt.Sprintf("hosts that left the spec could not be reached; what clusterctl put on them stays until they can be: %v", err))
	}
	return nil
}

// retiredHosts are the hosts the local state records that the spec no
// longer names, with the spec's ssh settings.
func (s *Session) retiredHosts() ([]spec.Host, error) {
	st, err := s.Store.Read()
	if err != nil || st == nil {
		return nil, err
	}
	var out []spec.Host
	for _, name := range st.HostNames() {
		if _, ok := s.Cluster.Host(name); ok {
			continue
		}
		ssh := s.Cluster.SSH()
		out = append(out, spec.Host{Name: name, Address: st.Hosts[name].Address, Port: ssh.Port, User: ssh.User, SSH: ssh})
	}
	return out, nil
}

// hosts are the spec's hosts and the connected hosts that left it.
func (s *Session) hosts() []spec.Host { return append(s.Cluster.Hosts(), s.retired...) }

// Close closes the connections.
func (s *Session) Close() { CloseAll(s.conns) }

// Host returns the components view of a connected host.
func (s *Session) Host(name string) (components.Host, bool) {
	c, ok := s.conns[name]
	if !ok {
		return nil, false
	}
	return componentHost{c.Client}, true
}

// Clients returns the SSH clients of every connected host (the spec's and
// those that left it), for the host lease.
func (s *Session) Clients() []*provision.Client {
	var out []*provision.Client
	for _, name := range slices.Sorted(maps.Keys(s.conns)) {
		out = append(out, s.conns[name].Client)
	}
	return out
}

// Client returns the SSH client of a connected host.
func (s *Session) Client(name string) (*provision.Client, bool) {
	c, ok := s.conns[name]
	if !ok {
		return nil, false
	}
	return c.Client, true
}

// World is what the hosts reported.
type World struct {
	Installed map[string]components.Installed
	Objects   []plan.Object
	Platforms map[string]bundle.Platform
	Lab       map[string]components.LabHost
	Facts     map[string]provision.Facts
	Digests   map[string]string // per host, for the plan fingerprint
}

// Observe reads every host's facts (one round trip: architecture, cgroup
// version, init system, capabilities, tools, the lab marker and
// installed.json) and checks its installed components for drift, in
// parallel.
func (s *Session) Observe(ctx context.Context) (World, error) {
	w := World{Installed: map[string]components.Installed{}, Platforms: map[string]bundle.Platform{},
		Lab: map[string]components.LabHost{}, Facts: map[string]provision.Facts{}, Digests: map[string]string{}}
	var mu sync.Mutex
	err := s.forEachHost(ctx, s.hosts(), func(ctx context.Context, h spec.Host, ch components.Host) error {
		cl, ok := s.Client(h.Name)
		if !ok {
			return errors.New("not connected")
		}
		f, err := cl.Facts(ctx)
		if err != nil {
			return fmt.Errorf("read host facts: %w", err)
		}
		arch, err := goArch(f.Machine)
		if err != nil {
			return err
		}
		inst, objs, err := components.Observe(ctx, ch, f.Installed)
		if err != nil {
			return err
		}
		if err := components.CheckRunning(ctx, ch, inst, objs); err != nil {
			return err
		}
		var lab components.LabHost
		if len(f.LabHost) > 0 {
			if err := json.Unmarshal(f.LabHost, &lab); err != nil {
				return fmt.Errorf("read /etc/clusterctl/lab-host.json: %w", err)
			}
		}
		d := sha256.New()
		fmt.Fprintf(d, "%s\n%s\n%s\n", arch, f.LabHost, f.Installed)
		// The facts the node components are configured from.
		fmt.Fprintf(d, "cgroup=%d systemd=%t swap=%t capeff=%x tools=%v\n", f.CgroupVersion, f.SystemdPID1, f.SwapOn, f.CapEff, slices.Sorted(maps.Keys(f.Tools)))
		for _, o := range objs {
			fmt.Fprintf(d, "%s drift=%q\n", o.Address(), o.Drift)
		}
		mu.Lock()
		defer mu.Unlock()
		w.Installed[h.Name] = inst
		w.Objects = append(w.Objects, objs...)
		w.Platforms[h.Name] = bundle.Platform{OS: "linux", Arch: arch}
		w.Facts[h.Name] = f
		if len(f.LabHost) > 0 {
			w.Lab[h.Name] = lab
		}
		w.Digests[h.Name] = "sha256:" + hex.EncodeToString(d.Sum(nil))
		return nil
	})
	return w, err
}

// forEachHost runs fn for each host, each call holding a slot of the
// run-wide limit, and joins the errors, each wrapped with its host.
func (s *Session) forEachHost(ctx context.Context, hosts []spec.Host, fn func(context.Context, spec.Host, components.Host) error) error {
	errs := provision.ForEach(ctx, hosts, len(hosts), func(ctx context.Context, _ int, h spec.Host) error {
		ch, ok := s.Host(h.Name)
		if !ok {
			return fmt.Errorf("host %s: not connected", h.Name)
		}
		release, err := s.slot(ctx)
		if err != nil {
			return err
		}
		defer release()
		if err := fn(ctx, h, ch); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		return nil
	})
	return errors.Join(errs...)
}

func goArch(machine string) (string, error) {
	switch machine {
	case "x86_64", "amd64":
		return "amd64", nil
	case "aarch64", "arm64":
		return "arm64", nil
	}
	return "", fmt.Errorf("unsupported machine architecture %q (clusterctl installs linux/amd64 and linux/arm64)", machine)
}

// pkiView serves components the certificates, keys and kubeconfigs of a
// PKI store.
type pkiView struct {
	r pki.Reader
	t pki.Table
}

func (v pkiView) File(rel string) ([]byte, error) { return v.r.Read(rel) }
func (v pkiView) Kubeconfig(name string) ([]byte, error) {
	return pki.RenderKubeconfig(v.r, v.t, name)
}

// memOverlay reads through to a base store and keeps writes in memory: a
// plan computes with the certificates an apply would create (or restore
// from the hosts) without writing them; flush writes exactly those once
// the plan is approved.
type memOverlay struct {
	base   pki.Reader
	mu     sync.Mutex
	files  map[string]overlayFile
	writes []string // paths in the order written: keys before their certificates
}

type overlayFile struct {
	data []byte
	mode fs.FileMode
}

func (m *memOverlay) Read(p string) ([]byte, error) {
	m.mu.Lock()
	f, ok := m.files[p]
	m.mu.Unlock()
	if ok {
		return f.data, nil
	}
	return m.base.Read(p)
}

func (m *memOverlay) Write(p string, data []byte, mode fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		m.files = map[string]overlayFile{}
	}
	if _, ok := m.files[p]; !ok {
		m.writes = append(m.writes, p)
	}
	m.files[p] = overlayFile{data: slices.Clone(data), mode: mode}
	return nil
}

// flush writes what was written to the overlay into dst, in order. A
// plan that needs no certificates (destroy, rollback) has no overlay.
func (m *memOverlay) flush(dst pki.Store) error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.writes {
		f := m.files[p]
		if err := dst.Write(p, f.data, f.mode); err != nil {
			return err
		}
	}
	m.files, m.writes = nil, nil
	return nil
}

// SavePKI writes the certificates and keys the plan made or restored into
// the state folder. Apply calls it once the plan is approved, so what is
// installed on the hosts is exactly what the plan was computed from.
func (s *Session) SavePKI(c *Computed) error {
	if err := c.pki.flush(pki.DirStore{Root: s.Store.PKIDir()}); err != nil {
		return fmt.Errorf("save the PKI in %s: %w", s.Store.PKIDir(), err)
	}
	return nil
}

// restorePKI rebuilds a lost local PKI from the hosts: when the local
// store has no cluster CA but hosts have clusterctl components, every
// host's certificates, keys and kubeconfig client pairs are copied back, so
// that the plan reuses them instead of issuing new ones.
func (s *Session) restorePKI(ctx context.Context, store pki.Store, table pki.Table, w World) error {
	if _, err := store.Read(pki.IDClusterCA + ".crt"); !errors.Is(err, fs.ErrNotExist) {
		return err // present (nil) or unreadable
	}
	var restored []string
	for _, h := range s.Cluster.Hosts() {
		if len(w.Installed[h.Name].Components) == 0 {
			continue
		}
		cl, ok := s.Client(h.Name)
		if !ok {
			continue
		}
		files, err := pki.Restore(store, hostReader{ctx: ctx, c: cl}, table, h.Name)
		if err != nil {
			return fmt.Errorf("restore the PKI from %s: %w", h.Name, err)
		}
		restored = append(restored, files...)
	}
	if len(restored) > 0 {
		s.logf("The local PKI was missing: restored %d files from the hosts.", len(restored))
		s.emit(Event{Type: EventMessage, Message: fmt.Sprintf("the local PKI was missing: restored %d files from the hosts", len(restored))})
	}
	return nil
}

// hostReader reads PKI files from a host by absolute path.
type hostReader struct {
	ctx context.Context
	c   *provision.Client
}

func (r hostReader) Read(p string) ([]byte, error) { return r.c.ReadFile(r.ctx, p) }

// certChanges turns the PKI report into plan changes, so certificate
// creation and renewal (with expiry dates) show in the plan.
func certChanges(r pki.Report) []plan.Change {
	var out []plan.Change
	for _, res := range r.Changes() {
		c := plan.Change{Address: plan.Address("cert", res.ID, ""), Kind: "cert", Name: res.ID, Reason: res.Reason}
		switch res.Action {
		case pki.ActionCreate:
			c.Action = plan.Create
		default:
			c.Action = plan.Update
		}
		if !res.NotAfter.IsZero() {
			c.Attrs = append(c.Attrs, plan.AttrChange{Name: "not_after", Action: plan.Create, After: res.NotAfter.UTC().Format(time.RFC3339)})
		}
		out = append(out, c)
	}
	return out
}

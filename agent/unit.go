package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Paths are the three folders the agent works in. Tests point them at
// temporary folders; on a host they are DefaultPaths.
type Paths struct {
	ConfigRoot string // /etc/clusterctl: <component>/<generation>/unit.json and <component>/current
	RunDir     string // /run/clusterctl: agent.sock, agent.pid, agent.lock, <component>.pid
	LogDir     string // /var/log/clusterctl: <component>.log (+ .1 .2 .3), agent.log
}

// DefaultPaths are the folders on a host.
func DefaultPaths() Paths {
	return Paths{ConfigRoot: "/etc/clusterctl", RunDir: "/run/clusterctl", LogDir: "/var/log/clusterctl"}
}

// Socket is the control socket.
func (p Paths) Socket() string { return filepath.Join(p.RunDir, "agent.sock") }

// AgentPIDFile holds the running agent's pid (plain decimal).
func (p Paths) AgentPIDFile() string { return filepath.Join(p.RunDir, "agent.pid") }

// AgentLog is where a detached agent writes its own output.
func (p Paths) AgentLog() string { return filepath.Join(p.LogDir, "agent.log") }

func (p Paths) lockFile() string { return filepath.Join(p.RunDir, "agent.lock") }

// ComponentDir holds a component's generation folders and its current link.
func (p Paths) ComponentDir(name string) string { return filepath.Join(p.ConfigRoot, name) }

// GenerationDir is one generation folder of a component.
func (p Paths) GenerationDir(name string, gen int) string {
	return filepath.Join(p.ConfigRoot, name, strconv.Itoa(gen))
}

// CurrentLink is the symlink naming the active generation.
func (p Paths) CurrentLink(name string) string { return filepath.Join(p.ConfigRoot, name, "current") }

// PIDFile is the agent's record of a component's process (see pidRecord).
func (p Paths) PIDFile(name string) string { return filepath.Join(p.RunDir, name+".pid") }

// LogFile receives a component's stdout and stderr.
func (p Paths) LogFile(name string) string { return filepath.Join(p.LogDir, name+".log") }

// UnitFile is the name of the unit description inside a generation folder.
const UnitFile = "unit.json"

// Health probe types.
const (
	HealthHTTPS = "https" // GET url with an optional client certificate; 2xx passes
	HealthHTTP  = "http"  // GET url; 2xx passes
	HealthTCP   = "tcp"   // connect to address (host:port)
	HealthExec  = "exec"  // run command; exit status 0 passes
	HealthNone  = "none"  // passes while the process runs
)

// Unit describes how to run one component. Apply renders it as unit.json in
// each generation folder. A generation folder is immutable once `current`
// points at it: a change is a new generation.
type Unit struct {
	Name    string            `json:"name"`              // must equal the component folder name
	Version string            `json:"version,omitempty"` // shown by status; not interpreted
	Exec    string            `json:"exec"`              // absolute path of the program
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"` // added to a fixed PATH/HOME/LANG environment
	Dir     string            `json:"dir,omitempty"` // working folder; default the generation folder
	// User is the system user the process runs as, with that user's
	// primary group and no supplementary groups, HOME its home folder;
	// empty means root (the agent's own user). See credential.go.
	User string `json:"user,omitempty"`
	// Owns are folders handed to User (chown -R) before every start:
	// what a generation that ran as root wrote becomes the user's.
	Owns   []string `json:"owns,omitempty"`
	Health Health   `json:"health"`
	// StopSignal is sent to the process group on stop; SIGTERM by default.
	StopSignal string `json:"stop_signal,omitempty"`
	// StopTimeout is how long to wait before SIGKILL; 30s by default.
	StopTimeout Duration `json:"stop_timeout,omitempty"`
	// After names components to wait for (running and healthy) before this
	// one is started by a reload or at agent start; bounded wait.
	After       []string `json:"after,omitempty"`
	Limits      Limits   `json:"limits,omitempty"`
	OOMScoreAdj *int     `json:"oom_score_adj,omitempty"` // -1000..1000
}

// Health is a component's health probe. A failing probe is reported, it does
// not restart the component: apply's health gate decides what to do.
type Health struct {
	Type    string `json:"type"`              // https, http, tcp, exec, none
	URL     string `json:"url,omitempty"`     // https, http
	Address string `json:"address,omitempty"` // tcp: host:port
	CAFile  string `json:"ca_file,omitempty"` // https: CA to verify the server; system roots if empty
	// InsecureLoopback skips verifying the server certificate; allowed only
	// for loopback URLs, for components that serve health on 127.0.0.1
	// with a self-signed certificate (controller-manager, scheduler).
	InsecureLoopback bool     `json:"insecure_loopback,omitempty"`
	CertFile         string   `json:"cert_file,omitempty"`
	KeyFile          string   `json:"key_file,omitempty"`
	Command          []string `json:"command,omitempty"`  // exec: argv, absolute program path
	Interval         Duration `json:"interval,omitempty"` // between probes; 2s by default
	Timeout          Duration `json:"timeout,omitempty"`  // per probe; 2s by default
}

// Limits are resource limits set on the component's process.
type Limits struct {
	NOFILE uint64 `json:"nofile,omitempty"` // RLIMIT_NOFILE, soft and hard
}

// Duration is a time.Duration written as a Go duration string ("2s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"2s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// Defaults.
const (
	defaultStopTimeout   = 30 * time.Second
	defaultProbeInterval = 2 * time.Second
	defaultProbeTimeout  = 2 * time.Second
)

func (u Unit) stopTimeout() time.Duration {
	if u.StopTimeout == 0 {
		return defaultStopTimeout
	}
	return time.Duration(u.StopTimeout)
}

func (u Unit) stopSignal() syscall.Signal {
	s, err := parseSignal(u.StopSignal)
	if err != nil {
		return syscall.SIGTERM // Validate rejected it already
	}
	return s
}

func (h Health) interval() time.Duration {
	if h.Interval == 0 {
		return defaultProbeInterval
	}
	return time.Duration(h.Interval)
}

func (h Health) timeout() time.Duration {
	if h.Timeout == 0 {
		return defaultProbeTimeout
	}
	return time.Duration(h.Timeout)
}

var signalNames = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

func parseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return syscall.SIGTERM, nil
	}
	if sig, ok := signalNames[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown stop_signal %q (want SIGTERM, SIGINT, SIGQUIT, SIGKILL, SIGHUP, SIGUSR1 or SIGUSR2)", s)
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// ValidName reports whether name can be a component name: lower-case
// letters, digits, '.', '_' and '-', and not "agent" (the agent's own files
// share the run and log folders).
func ValidName(name string) error {
	if !nameRE.MatchString(name) || name == "agent" {
		return fmt.Errorf("invalid component name %q (lower-case letters, digits, '.', '_', '-'; not \"agent\")", name)
	}
	return nil
}

// Validate checks a unit on its own (not the files it names: they may be
// uploaded after the unit is rendered).
func (u Unit) Validate() error {
	var errs []error
	if err := ValidName(u.Name); err != nil {
		errs = append(errs, err)
	}
	if !filepath.IsAbs(u.Exec) {
		errs = append(errs, fmt.Errorf("exec %q must be an absolute path", u.Exec))
	}
	if u.Dir != "" && !filepath.IsAbs(u.Dir) {
		errs = append(errs, fmt.Errorf("dir %q must be an absolute path", u.Dir))
	}
	if u.User != "" && !userRE.MatchString(u.User) {
		errs = append(errs, fmt.Errorf("user %q is not a system user name (lower-case letters, digits, '_' and '-', at most 32)", u.User))
	}
	for _, o := range u.Owns {
		if u.User == "" || !filepath.IsAbs(o) || filepath.Clean(o) == "/" {
			errs = append(errs, fmt.Errorf("owns %q: needs a user and an absolute folder other than /", o))
		}
	}
	for k := range u.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs = append(errs, fmt.Errorf("invalid env name %q", k))
		}
	}
	if _, err := parseSignal(u.StopSignal); err != nil {
		errs = append(errs, err)
	}
	for _, a := range u.After {
		if err := ValidName(a); err != nil {
			errs = append(errs, fmt.Errorf("after: %w", err))
		} else if a == u.Name {
			errs = append(errs, fmt.Errorf("after: %q names the unit itself", a))
		}
	}
	if u.OOMScoreAdj != nil && (*u.OOMScoreAdj < -1000 || *u.OOMScoreAdj > 1000) {
		errs = append(errs, fmt.Errorf("oom_score_adj %d out of range -1000..1000", *u.OOMScoreAdj))
	}
	if err := u.Health.validate(); err != nil {
		errs = append(errs, fmt.Errorf("health: %w", err))
	}
	return errors.Join(errs...)
}

func (h Health) validate() error {
	switch h.Type {
	case HealthHTTPS, HealthHTTP:
		if !strings.HasPrefix(h.URL, h.Type+"://") {
			return fmt.Errorf("type %s needs url starting with %s://, got %q", h.Type, h.Type, h.URL)
		}
		if (h.CertFile == "") != (h.KeyFile == "") {
			return errors.New("cert_file and key_file go together")
		}
		if h.Type == HealthHTTP && (h.CAFile != "" || h.CertFile != "" || h.InsecureLoopback) {
			return errors.New("ca_file, cert_file, key_file and insecure_loopback need type https")
		}
		if h.InsecureLoopback && !loopbackURL(h.URL) {
			return fmt.Errorf("insecure_loopback is allowed only for a loopback URL, not %q", h.URL)
		}
	case HealthTCP:
		if h.Address == "" {
			return errors.New("type tcp needs address (host:port)")
		}
	case HealthExec:
		if len(h.Command) == 0 || !filepath.IsAbs(h.Command[0]) {
			return errors.New("type exec needs command with an absolute program path")
		}
	case HealthNone:
	case "":
		return errors.New("type is required (https, http, tcp, exec or none)")
	default:
		return fmt.Errorf("unknown type %q (want https, http, tcp, exec or none)", h.Type)
	}
	return nil
}

// EncodeUnit validates u and returns the unit.json bytes apply should write.
func EncodeUnit(u Unit) ([]byte, error) {
	if err := u.Validate(); err != nil {
		return nil, fmt.Errorf("unit %s: %w", u.Name, err)
	}
	b, err := json.MarshalIndent(u, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// DecodeUnit parses and validates unit.json bytes; file only names the
// source in errors. Unknown fields are errors: a typo must not be ignored.
func DecodeUnit(file string, b []byte) (Unit, error) {
	var u Unit
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return Unit{}, fmt.Errorf("%s:%d: %w", file, lineOf(b, se.Offset), err)
		case errors.As(err, &te):
			return Unit{}, fmt.Errorf("%s:%d: %w", file, lineOf(b, te.Offset), err)
		}
		return Unit{}, fmt.Errorf("%s: %w", file, err)
	}
	if dec.More() {
		return Unit{}, fmt.Errorf("%s: trailing data after the unit object", file)
	}
	if err := u.Validate(); err != nil {
		return Unit{}, fmt.Errorf("%s: %w", file, err)
	}
	return u, nil
}

func lineOf(b []byte, off int64) int {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	return bytes.Count(b[:off], []byte("\n")) + 1
}

// ErrNoCurrent means a component folder has no current link: the component
// is not (or no longer) meant to run.
var ErrNoCurrent = errors.New("no current generation")

// Resolved is a component's active generation as found on disk.
type Resolved struct {
	Unit       Unit
	Generation int
	Dir        string // the generation folder
	// Hash is the sha256 of every file in the generation folder (names and
	// contents). It is computed from the bytes on disk, so it stays the same
	// across agent versions; a changed hash or generation means restart.
	Hash string
}

// ResolveCurrent reads the component's current link and its unit.
func ResolveCurrent(p Paths, name string) (Resolved, error) {
	if err := ValidName(name); err != nil {
		return Resolved{}, err
	}
	compDir := p.ComponentDir(name)
	link := p.CurrentLink(name)
	target, err := os.Readlink(link)
	if errors.Is(err, fs.ErrNotExist) {
		return Resolved{}, fmt.Errorf("%s: %w", link, ErrNoCurrent)
	}
	if err != nil {
		return Resolved{}, fmt.Errorf("%s: %w", link, err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(compDir, target)
	}
	target = filepath.Clean(target)
	gen, err := strconv.Atoi(filepath.Base(target))
	if filepath.Dir(target) != filepath.Clean(compDir) || err != nil || gen <= 0 || strconv.Itoa(gen) != filepath.Base(target) {
		return Resolved{}, fmt.Errorf("%s: points to %q, want a generation folder %s/<positive integer>", link, target, compDir)
	}
	return ResolveGeneration(p, name, gen)
}

// ResolveGeneration reads one generation folder of a component.
func ResolveGeneration(p Paths, name string, gen int) (Resolved, error) {
	if err := ValidName(name); err != nil {
		return Resolved{}, err
	}
	target := p.GenerationDir(name, gen)
	unitPath := filepath.Join(target, UnitFile)
	b, err := os.ReadFile(unitPath)
	if err != nil {
		return Resolved{}, err
	}
	u, err := DecodeUnit(unitPath, b)
	if err != nil {
		return Resolved{}, err
	}
	if u.Name != name {
		return Resolved{}, fmt.Errorf("%s: name %q does not match the component folder %q", unitPath, u.Name, name)
	}
	h, err := hashDir(target)
	if err != nil {
		return Resolved{}, err
	}
	return Resolved{Unit: u, Generation: gen, Dir: target, Hash: h}, nil
}

// hashDir hashes the names and contents of the files under dir, in order.
func hashDir(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %q %d\n", rel, len(b))
			h.Write(b)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "l %q %q\n", rel, t)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ScanComponents lists the components under the config root that have a
// current link: resolved units, and per-component errors for the ones whose
// current generation cannot be used. Folders starting with '.' and plain files
// (installed.json) are skipped.
func ScanComponents(p Paths) (map[string]Resolved, map[string]error, error) {
	entries, err := os.ReadDir(p.ConfigRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Resolved{}, map[string]error{}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	units := map[string]Resolved{}
	errs := map[string]error{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := e.Name()
		if _, err := os.Lstat(p.CurrentLink(name)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		r, err := ResolveCurrent(p, name)
		if err != nil {
			errs[name] = err
			continue
		}
		units[name] = r
	}
	return units, errs, nil
}

// loopbackURL reports whether u names 127.0.0.0/8, ::1 or localhost.
func loopbackURL(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := pu.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

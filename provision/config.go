package provision

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
)

// HostKeyPolicy says what to do with a host key that known_hosts does not
// list. A key that differs from a listed one is refused under every policy.
type HostKeyPolicy string

const (
	// HostKeyStrict refuses unknown hosts (the default).
	HostKeyStrict HostKeyPolicy = "strict"
	// HostKeyAcceptNew records the key of an unknown host in the first
	// known_hosts file and connects.
	HostKeyAcceptNew HostKeyPolicy = "accept-new"
)

// Defaults used when a Config leaves a field zero.
const (
	DefaultConnectTimeout    = 10 * time.Second
	DefaultKeepAliveInterval = 15 * time.Second
	DefaultKeepAliveCountMax = 3
)

// Config says how to reach one host. Fields left zero are taken from
// ~/.ssh/config (HostName, User, Port, IdentityFile, ProxyJump), then from
// OpenSSH's defaults. Explicit fields always win over ~/.ssh/config.
type Config struct {
	// Name labels the host in messages; defaults to Host.
	Name string
	// Host is an address, a DNS name or a Host alias of ~/.ssh/config.
	Host string
	Port int
	User string

	// IdentityFiles are private key files to offer, before the agent's keys.
	IdentityFiles []string
	// PassphraseEnv names the environment variable holding the passphrase of
	// encrypted identity files.
	PassphraseEnv string
	// Passphrase is asked when a key is encrypted and PassphraseEnv is unset
	// (a terminal prompt, for example). Nil: encrypted keys are skipped with
	// an error unless the agent holds them.
	Passphrase func(keyFile string) ([]byte, error)
	// NoAgent disables $SSH_AUTH_SOCK.
	NoAgent bool

	// KnownHostsFiles are read for host keys; accept-new appends to the
	// first. Default: ~/.ssh/known_hosts.
	KnownHostsFiles []string
	HostKeyPolicy   HostKeyPolicy

	// ProxyJump lists the bastions to go through, first one dialled
	// directly. Nil: ~/.ssh/config's ProxyJump, if any. A jump entry's zero
	// fields inherit this Config's key, known_hosts, policy and timeout
	// settings; its own ProxyJump is ignored (the chain is flat).
	ProxyJump []Config

	// Sudo runs commands and file operations as root through sudo when the
	// login user is not root.
	Sudo bool
	// SudoPasswordEnv names the environment variable that holds the sudo
	// password. Empty: sudo must not ask for one (NOPASSWD).
	SudoPasswordEnv string

	// ConnectTimeout bounds Dial as a whole, retries and jumps included.
	ConnectTimeout    time.Duration
	KeepAliveInterval time.Duration
	KeepAliveCountMax int

	// SSHConfigFile is the ssh_config file to read: "" reads ~/.ssh/config
	// then /etc/ssh/ssh_config, "none" reads nothing (like ssh -F).
	SSHConfigFile string
}

func (c Config) name() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Host
}

// endpoint is a Config resolved against ssh_config and defaults: everything
// needed to dial one hop.
type endpoint struct {
	name          string
	host          string // HostName, as dialled
	port          int
	user          string
	identityFiles []string
	explicitIDs   bool // identity files named by the caller, not defaults: missing is an error
	knownHosts    []string
	cfg           Config // the Config this hop came from (jumps: after inherit)
	jumps         []endpoint
}

func (e endpoint) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

// sshConfigs reads the ssh_config files a Config asks for. Files that do not
// exist are skipped; files that do not parse are an error naming the file.
func (c Config) sshConfigs(home string) ([]*ssh_config.Config, error) {
	var files []string
	switch c.SSHConfigFile {
	case "none":
		return nil, nil
	case "":
		files = []string{filepath.Join(home, ".ssh", "config"), "/etc/ssh/ssh_config"}
	default:
		files = []string{expandTilde(c.SSHConfigFile, home)}
	}
	var out []*ssh_config.Config
	for _, f := range files {
		b, err := readLocalFile(f, maxSSHConfigSize)
		if errors.Is(err, fs.ErrNotExist) && c.SSHConfigFile == "" {
			continue
		}
		if err != nil {
			return nil, err
		}
		cfg, err := ssh_config.DecodeBytes(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, cfg)
	}
	return out, nil
}

// lookup returns the first value of key for alias in the ssh_config files,
// as OpenSSH does (first obtained value wins).
func lookup(cfgs []*ssh_config.Config, alias, key string) string {
	for _, c := range cfgs {
		if v, err := c.Get(alias, key); err == nil && v != "" {
			return v
		}
	}
	return ""
}

func lookupAll(cfgs []*ssh_config.Config, alias, key string) []string {
	var out []string
	for _, c := range cfgs {
		if v, err := c.GetAll(alias, key); err == nil {
			out = append(out, v...)
		}
	}
	return out
}

// resolve fills in what the Config leaves open from ssh_config and defaults.
func (c Config) resolve() (endpoint, error) {
	return c.resolveHop(true)
}

func (c Config) resolveHop(withJumps bool) (endpoint, error) {
	if c.Host == "" {
		return endpoint{}, fmt.Errorf("no host given")
	}
	local, err := user.Current()
	if err != nil {
		return endpoint{}, fmt.Errorf("current user: %w", err)
	}
	home := local.HomeDir
	cfgs, err := c.sshConfigs(home)
	if err != nil {
		return endpoint{}, fmt.Errorf("ssh config: %w", err)
	}
	alias := c.Host
	e := endpoint{name: c.name(), host: c.Host, port: c.Port, user: c.User, cfg: c}
	if v := lookup(cfgs, alias, "HostName"); v != "" {
		e.host = expandTokens(v, alias, "", local.Username, home)
	}
	if e.port == 0 {
		if v := lookup(cfgs, alias, "Port"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p <= 0 || p > 65535 {
				return endpoint{}, fmt.Errorf("ssh config: Host %s: bad Port %q", alias, v)
			}
			e.port = p
		} else {
			e.port = 22
		}
	}
	if e.user == "" {
		e.user = lookup(cfgs, alias, "User")
	}
	if e.user == "" {
		e.user = local.Username
	}
	if len(c.IdentityFiles) > 0 {
		e.explicitIDs = true
		for _, f := range c.IdentityFiles {
			e.identityFiles = append(e.identityFiles, expandTilde(f, home))
		}
	} else {
		for _, f := range lookupAll(cfgs, alias, "IdentityFile") {
			e.identityFiles = append(e.identityFiles, expandTokens(f, e.host, e.user, local.Username, home))
		}
		if len(e.identityFiles) == 0 {
			for _, f := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
				e.identityFiles = append(e.identityFiles, filepath.Join(home, ".ssh", f))
			}
		}
	}
	switch {
	case len(c.KnownHostsFiles) > 0:
		e.knownHosts = c.KnownHostsFiles
	case lookup(cfgs, alias, "UserKnownHostsFile") != "":
		for _, f := range strings.Fields(lookup(cfgs, alias, "UserKnownHostsFile")) {
			e.knownHosts = append(e.knownHosts, expandTokens(f, e.host, e.user, local.Username, home))
		}
	default:
		e.knownHosts = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	if !withJumps {
		return e, nil
	}
	jumps := c.ProxyJump
	if jumps == nil {
		if v := lookup(cfgs, alias, "ProxyJump"); v != "" && v != "none" {
			jumps, err = parseProxyJump(v)
			if err != nil {
				return endpoint{}, fmt.Errorf("ssh config: Host %s: %w", alias, err)
			}
		}
	}
	for _, j := range jumps {
		j = c.inherit(j)
		je, err := j.resolveHop(false)
		if err != nil {
			return endpoint{}, fmt.Errorf("jump host %s: %w", j.name(), err)
		}
		e.jumps = append(e.jumps, je)
	}
	return e, nil
}

// inherit fills a jump host's zero fields from the target's Config.
func (c Config) inherit(j Config) Config {
	if len(j.IdentityFiles) == 0 {
		j.IdentityFiles = c.IdentityFiles
	}
	if j.PassphraseEnv == "" {
		j.PassphraseEnv = c.PassphraseEnv
	}
	if j.Passphrase == nil {
		j.Passphrase = c.Passphrase
	}
	j.NoAgent = j.NoAgent || c.NoAgent
	if len(j.KnownHostsFiles) == 0 {
		j.KnownHostsFiles = c.KnownHostsFiles
	}
	if j.HostKeyPolicy == "" {
		j.HostKeyPolicy = c.HostKeyPolicy
	}
	if j.SSHConfigFile == "" {
		j.SSHConfigFile = c.SSHConfigFile
	}
	j.ProxyJump = nil
	return j
}

// parseProxyJump reads OpenSSH's ProxyJump syntax: [user@]host[:port][,...].
func parseProxyJump(v string) ([]Config, error) {
	var out []Config
	for _, hop := range strings.Split(v, ",") {
		hop = strings.TrimSpace(strings.TrimPrefix(hop, "ssh://"))
		if hop == "" {
			return nil, fmt.Errorf("bad ProxyJump %q", v)
		}
		var j Config
		if at := strings.LastIndexByte(hop, '@'); at >= 0 {
			j.User, hop = hop[:at], hop[at+1:]
		}
		j.Host = hop
		if h, p, err := net.SplitHostPort(hop); err == nil {
			port, err := strconv.Atoi(p)
			if err != nil || port <= 0 || port > 65535 {
				return nil, fmt.Errorf("bad port in ProxyJump %q", v)
			}
			j.Host, j.Port = h, port
		}
		out = append(out, j)
	}
	return out, nil
}

// expandTokens expands the ssh_config tokens that make sense here: %h host,
// %r remote user, %u local user, %d home, %% and a leading ~.
func expandTokens(s, host, remoteUser, localUser, home string) string {
	s = expandTilde(s, home)
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i == len(s)-1 {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'h':
			b.WriteString(host)
		case 'r':
			b.WriteString(remoteUser)
		case 'u':
			b.WriteString(localUser)
		case 'd':
			b.WriteString(home)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func expandTilde(p, home string) string {
	if p == "~" {
		return home
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(home, p[2:])
	}
	return p
}

func (c Config) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return DefaultConnectTimeout
}

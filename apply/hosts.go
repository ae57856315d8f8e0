package apply

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/provision"
	"github.com/clusterctl/clusterctl/spec"
)

// Conn is an open connection to one host of the spec.
type Conn struct {
	Host   spec.Host
	Client *provision.Client
}

// SSHConfig maps a host's effective spec settings to the transport's.
func SSHConfig(h spec.Host) provision.Config {
	s := h.SSH
	cfg := provision.Config{
		Name:            h.Name,
		Host:            h.Address,
		Port:            h.Port,
		User:            h.User,
		IdentityFiles:   s.IdentityFiles,
		NoAgent:         !s.UseAgent,
		KnownHostsFiles: []string{s.KnownHostsFile},
		HostKeyPolicy:   provision.HostKeyPolicy(s.HostKeyPolicy),
		Sudo:            s.Sudo,
		SudoPasswordEnv: s.SudoPasswordEnv,
		PassphraseEnv:   s.PassphraseEnv,
		ConnectTimeout:  s.ConnectTimeout,
	}
	if s.Bastion.Address != "" {
		cfg.ProxyJump = []provision.Config{{
			Name: h.Name + "-bastion", Host: s.Bastion.Address, Port: s.Bastion.Port, User: s.Bastion.User,
			IdentityFiles: s.IdentityFiles, NoAgent: !s.UseAgent, PassphraseEnv: s.PassphraseEnv,
			KnownHostsFiles: []string{s.KnownHostsFile}, HostKeyPolicy: provision.HostKeyPolicy(s.HostKeyPolicy),
			ConnectTimeout: s.ConnectTimeout,
		}}
	}
	return cfg
}

// Connect dials every host with at most parallelism dials at once. Hosts
// that fail are reported together (each error names its host); the
// connections that worked are returned either way, so the caller can close
// them.
func Connect(ctx context.Context, hosts []spec.Host, parallelism int, passphrase func(keyFile string) ([]byte, error)) (map[string]*Conn, error) {
	var mu sync.Mutex
	conns := map[string]*Conn{}
	errs := provision.ForEach(ctx, hosts, max(parallelism, 1), func(ctx context.Context, _ int, h spec.Host) error {
		cfg := SSHConfig(h)
		cfg.Passphrase = passphrase
		c, err := provision.Dial(ctx, cfg)
		if err != nil {
			return fmt.Errorf("host %s (%s): %w", h.Name, h.Address, err)
		}
		mu.Lock()
		conns[h.Name] = &Conn{Host: h, Client: c}
		mu.Unlock()
		return nil
	})
	return conns, errors.Join(errs...)
}

// CloseAll closes every connection.
func CloseAll(conns map[string]*Conn) {
	for _, c := range conns {
		c.Client.Close()
	}
}

// componentHost adapts a provision client to what components need.
type componentHost struct{ c *provision.Client }

var _ components.Host = componentHost{}

func (h componentHost) Name() string { return h.c.Name() }

func (h componentHost) Root() string { return "" }

func (h componentHost) Run(ctx context.Context, cmd string) ([]byte, error) {
	res, err := h.c.Run(ctx, provision.Cmd{Line: cmd})
	return res.Stdout, err // a failure's error carries the end of stderr
}

func (h componentHost) Upload(ctx context.Context, local, path, sha string, mode fs.FileMode) (int64, error) {
	t, err := h.c.Upload(ctx, local, path, provision.FileOptions{Mode: mode, SHA256: sha})
	return t.Sent, err
}

func (h componentHost) WriteFile(ctx context.Context, path string, data []byte, mode fs.FileMode) error {
	_, err := h.c.WriteFile(ctx, path, data, provision.FileOptions{Mode: mode})
	return err
}

// HostOf is the components view of a connection (status and logs use it
// outside a session).
func HostOf(c *provision.Client) components.Host { return componentHost{c} }

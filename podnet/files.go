package podnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// sysctls the pod network needs: routing between pods and the node's
// links, and iptables (kube-proxy's Service rules) seeing traffic between
// pods on the same bridge.
var sysctls = []struct{ path, want, why string }{
	{"/proc/sys/net/ipv4/ip_forward", "1", "forward pod traffic"},
	{"/proc/sys/net/bridge/bridge-nf-call-iptables", "1", "let iptables see bridged pod traffic (br_netfilter)"},
}

func syncSysctls() ([]string, error) {
	var changed []string
	var errs []error
	for _, s := range sysctls {
		b, err := os.ReadFile(s.path)
		if errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s does not exist: load the kernel module (modprobe br_netfilter) to %s", s.path, s.why))
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.TrimSpace(string(b)) == s.want {
			continue
		}
		if err := os.WriteFile(s.path, []byte(s.want), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("set %s to %s (%s): %w", s.path, s.want, s.why, err))
			continue
		}
		changed = append(changed, fmt.Sprintf("%s set to %s", s.path, s.want))
	}
	return changed, errors.Join(errs...)
}

func checkSysctls() []string {
	var problems []string
	for _, s := range sysctls {
		b, err := os.ReadFile(s.path)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", s.path, err))
		} else if got := strings.TrimSpace(string(b)); got != s.want {
			problems = append(problems, fmt.Sprintf("%s is %s, want %s (%s)", s.path, got, s.want, s.why))
		}
	}
	return problems
}

// syncPluginLinks points BinDir/<plugin> at PluginDir/<plugin>. A link is
// replaced by a rename, so containerd never sees a missing plugin.
func (c Config) syncPluginLinks() ([]string, error) {
	if err := os.MkdirAll(c.BinDir, 0o755); err != nil {
		return nil, err
	}
	var changed []string
	for _, p := range c.Plugins {
		target := filepath.Join(c.PluginDir, p)
		if _, err := os.Stat(target); err != nil {
			return changed, fmt.Errorf("CNI plugin %s: %w", p, err)
		}
		link := filepath.Join(c.BinDir, p)
		if got, err := os.Readlink(link); err == nil && got == target {
			continue
		}
		tmp := filepath.Join(c.BinDir, "."+p+".tmp")
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return changed, err
		}
		if err := os.Rename(tmp, link); err != nil {
			return changed, err
		}
		changed = append(changed, fmt.Sprintf("%s -> %s", link, target))
	}
	return changed, nil
}

func (c Config) checkPluginLinks() []string {
	var problems []string
	for _, p := range c.Plugins {
		link, target := filepath.Join(c.BinDir, p), filepath.Join(c.PluginDir, p)
		if got, err := os.Readlink(link); err != nil || got != target {
			problems = append(problems, fmt.Sprintf("%s does not point to %s", link, target))
		}
	}
	return problems
}

// confMode is the network list's mode: only containerd (root) reads it.
const confMode = 0o600

// confPath is the installed network list.
func (c Config) confPath() string { return filepath.Join(c.ConfDir, c.ConfName) }

// ValidateConfList checks a network list with libcni: it parses, and every
// plugin it names is in binDir and supports its CNI version (libcni asks
// each plugin binary).
func ValidateConfList(ctx context.Context, list []byte, binDir string) error {
	nl, err := libcni.ConfListFromBytes(list)
	if err != nil {
		return fmt.Errorf("CNI network list: %w", err)
	}
	if _, err := libcni.NewCNIConfig([]string{binDir}, nil).ValidateNetworkList(ctx, nl); err != nil {
		return fmt.Errorf("CNI network list %s: %w", nl.Name, err)
	}
	return nil
}

// syncConfList installs the network list when the installed one differs,
// after libcni validated it against the plugins.
func (c Config) syncConfList(ctx context.Context, list []byte) ([]string, error) {
	if have, err := os.ReadFile(c.confPath()); err == nil && bytes.Equal(have, list) {
		// Root's alone (CIS 1.1.9), also where an earlier clusterctl wrote it 0644.
		return nil, os.Chmod(c.confPath(), confMode)
	}
	if err := ValidateConfList(ctx, list, c.BinDir); err != nil {
		return nil, fmt.Errorf("not installing %s: %w", c.confPath(), err)
	}
	if err := os.MkdirAll(c.ConfDir, 0o755); err != nil {
		return nil, err
	}
	// The temporary name has no CNI extension, so containerd, which
	// watches the folder, never loads a half-written file.
	tmp := filepath.Join(c.ConfDir, "."+c.ConfName+".tmp")
	if err := writeSync(tmp, list, confMode); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, c.confPath()); err != nil {
		return nil, err
	}
	return []string{c.confPath() + " written"}, nil
}

// checkConfList reports a missing or changed network list, and a foreign
// one that containerd would load instead (it takes the first by name).
func (c Config) checkConfList(list []byte) []string {
	var problems []string
	have, err := os.ReadFile(c.confPath())
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("%s: %v", c.confPath(), err))
	case !bytes.Equal(have, list):
		problems = append(problems, c.confPath()+" differs from the configured network list")
	}
	files, err := libcni.ConfFiles(c.ConfDir, []string{".conf", ".conflist", ".json"})
	if err == nil && len(files) > 0 && files[0] != c.confPath() {
		problems = append(problems, fmt.Sprintf("%s sorts before %s, so the container runtime uses it instead: remove it", files[0], c.confPath()))
	}
	return problems
}

func writeSync(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package lab

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostPath is a workstation path that each lab host has its own copy of,
// bound from DIR/hosts/NAME/fs/<path>.
type hostPath struct {
	path string
	mode fs.FileMode
	file bool // a single file; bound only if the workstation has it
}

// hostPaths are the per-host parts of a lab host's filesystem: the layout
// of DESIGN.md ("On a host"), what containerd, the kubelet and CNI keep,
// and what makes a host itself (ssh keys, root's home, logs, /tmp, names).
// /run is a tmpfs per host (see freshRun).
func hostPaths() []hostPath {
	return []hostPath{
		{path: "/etc/ssh", mode: 0o755},
		{path: "/etc/kubernetes", mode: 0o755},
		{path: "/etc/clusterctl", mode: 0o755},
		{path: "/etc/cni", mode: 0o755},
		{path: "/etc/containerd", mode: 0o755},
		{path: "/opt/clusterctl", mode: 0o755},
		{path: "/opt/cni", mode: 0o755},
		{path: "/var/lib/etcd", mode: 0o700},
		{path: "/var/lib/kubelet", mode: 0o755},
		{path: "/var/lib/containerd", mode: 0o711},
		{path: "/var/lib/cni", mode: 0o755},
		{path: "/var/lib/clusterctl", mode: 0o700}, // etcd snapshots taken before upgrades
		{path: "/var/log", mode: 0o755},
		{path: "/root", mode: 0o700},
		{path: "/tmp", mode: 0o777 | fs.ModeSticky},
		{path: "/etc/hosts", mode: 0o644, file: true},
		{path: "/etc/hostname", mode: 0o644, file: true},
		{path: "/etc/machine-id", mode: 0o444, file: true},
	}
}

// MarkerPath is the file inside every lab host (and on no real host) that
// tells later steps which lab-specific settings the host needs.
const MarkerPath = "/etc/clusterctl/lab-host.json"

// Marker is the content of MarkerPath.
type Marker struct {
	Lab        string `json:"lab"`
	Host       string `json:"host"`
	CgroupRoot string `json:"cgroup_root"`
	Address    string `json:"address"`
}

// hostDir is DIR/hosts/NAME: the host's config, logs and filesystem.
func hostDir(dir, name string) string { return filepath.Join(dir, hostsDir, name) }

// hostFS is the folder whose subfolders are bound over the host's paths.
func hostFS(dir, name string) string { return filepath.Join(hostDir(dir, name), "fs") }

// keyPair is an ed25519 key in the OpenSSH formats.
type keyPair struct {
	private []byte // OpenSSH PEM
	public  ssh.PublicKey
}

func newKeyPair(comment string) (keyPair, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return keyPair{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return keyPair{}, err
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{private: pem.EncodeToMemory(block), public: pub}, nil
}

func authorizedLine(pub ssh.PublicKey, comment string) []byte {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	return []byte(line + " " + comment + "\n")
}

// sshdConfig is the host's /etc/ssh/sshd_config: Debian's defaults made
// explicit, key-only logins, and the host's own address.
func sshdConfig(h *HostState, sftpServer string) string {
	return fmt.Sprintf(`# Written by clusterctl lab for host %s.
ListenAddress %s
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp %s
`, h.Name, h.Address, sftpServer)
}

// sftpServerPath is Debian's sftp-server, else sshd's built-in one.
func sftpServerPath() string {
	const p = "/usr/lib/openssh/sftp-server"
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "internal-sftp"
}

// writeHostFiles makes DIR/hosts/NAME: the per-host folders, the host key,
// sshd_config, root's authorized_keys, names, the marker and init.json.
func writeHostFiles(s *State, h *HostState, hostKey keyPair, clientPub ssh.PublicKey, etcHosts []byte, cfg *hostConfig) error {
	root := hostFS(s.Dir, h.Name)
	if err := os.MkdirAll(hostDir(s.Dir, h.Name), 0o700); err != nil {
		return err
	}
	for _, p := range hostPaths() {
		if p.file {
			continue
		}
		if err := mkdirMode(filepath.Join(root, p.path), p.mode); err != nil {
			return err
		}
	}
	sshDir := filepath.Join(root, "etc/ssh")
	sshRoot := filepath.Join(root, "root/.ssh")
	if err := mkdirMode(sshRoot, 0o700); err != nil {
		return err
	}
	marker, err := json.MarshalIndent(Marker{Lab: s.ID, Host: h.Name, CgroupRoot: h.CgroupRoot, Address: h.Address}, "", "  ")
	if err != nil {
		return err
	}
	machineID := make([]byte, 16)
	if _, err := rand.Read(machineID); err != nil {
		return err
	}
	files := []struct {
		path string
		data []byte
		mode fs.FileMode
	}{
		{filepath.Join(sshDir, "ssh_host_ed25519_key"), hostKey.private, 0o600},
		{filepath.Join(sshDir, "ssh_host_ed25519_key.pub"), authorizedLine(hostKey.public, "root@"+h.Name), 0o644},
		{filepath.Join(sshDir, "sshd_config"), []byte(sshdConfig(h, sftpServerPath())), 0o644},
		{filepath.Join(sshRoot, "authorized_keys"), authorizedLine(clientPub, "clusterctl-lab-"+s.ID), 0o600},
		{filepath.Join(root, "etc/hosts"), etcHosts, 0o644},
		{filepath.Join(root, "etc/hostname"), []byte(h.Name + "\n"), 0o644},
		{filepath.Join(root, "etc/machine-id"), []byte(hex.EncodeToString(machineID) + "\n"), 0o444},
		{filepath.Join(root, strings.TrimPrefix(MarkerPath, "/")), append(marker, '\n'), 0o644},
	}
	// The host's ssh client and sshd's group-exchange moduli, as on any
	// Debian host.
	for _, name := range []string{"ssh_config", "moduli"} {
		if b, err := os.ReadFile(filepath.Join("/etc/ssh", name)); err == nil {
			files = append(files, struct {
				path string
				data []byte
				mode fs.FileMode
			}{filepath.Join(sshDir, name), b, 0o644})
		}
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(f.path, f.mode); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(hostDir(s.Dir, h.Name), "init.json"), append(b, '\n'), 0o600)
}

// mkdirMode makes a folder (and its parents) and sets its exact mode,
// whatever the umask.
func mkdirMode(path string, mode fs.FileMode) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

// binds lists the host's bind mounts: each per-host path the workstation
// has (or that Up created as a mount point).
func binds(dir, name string) []bindMount {
	var out []bindMount
	for _, p := range hostPaths() {
		if p.file {
			if _, err := os.Stat(p.path); err != nil {
				continue
			}
		}
		out = append(out, bindMount{Source: filepath.Join(hostFS(dir, name), p.path), Target: p.path})
	}
	return out
}

// etcHosts is every host's /etc/hosts: the workstation's, then the lab's
// names, so hosts resolve themselves (sudo wants that) and each other.
func etcHosts(s *State) ([]byte, error) {
	base, err := os.ReadFile("/etc/hosts")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var b strings.Builder
	b.Write(base)
	if len(base) > 0 && base[len(base)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "# clusterctl lab %s\n", s.ID)
	for _, h := range s.Hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.Address, h.Name)
	}
	return []byte(b.String()), nil
}

// knownHosts is the known_hosts file for every host's key.
func knownHosts(s *State, keys map[string]ssh.PublicKey) []byte {
	var b strings.Builder
	for _, h := range s.Hosts {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(h.Address)}, keys[h.Name]))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// labSpec is DIR/lab.hcl: the ssh block and one host block per bridge host,
// in hclwrite's canonical format. Hosts behind a bastion are left out: they
// exist for transport tests.
func labSpec(s *State, now time.Time) []byte {
	f := hclwrite.NewEmptyFile()
	body := f.Body()
	sshb := body.AppendNewBlock("ssh", nil).Body()
	sshb.SetAttributeValue("user", cty.StringVal("root"))
	sshb.SetAttributeValue("identity_files", cty.ListVal([]cty.Value{cty.StringVal(clientKeyFile)}))
	sshb.SetAttributeValue("known_hosts_file", cty.StringVal(knownHostsFile))
	sshb.SetAttributeValue("host_key_policy", cty.StringVal("strict"))
	for _, h := range s.Hosts {
		if h.Bastion != "" {
			continue
		}
		body.AppendNewline()
		hb := body.AppendNewBlock("host", []string{h.Name}).Body()
		hb.SetAttributeValue("address", cty.StringVal(h.Address))
		roles := make([]cty.Value, 0, len(h.Roles))
		for _, r := range h.Roles {
			roles = append(roles, cty.StringVal(r))
		}
		if len(roles) > 0 {
			hb.SetAttributeValue("roles", cty.ListVal(roles))
		}
	}
	header := fmt.Sprintf("# Written by `clusterctl lab up` on %s; `clusterctl lab down --dir %s` removes the lab.\n",
		now.UTC().Format("2006-01-02 15:04 MST"), s.Dir)
	return hclwrite.Format(append([]byte(header), f.Bytes()...))
}

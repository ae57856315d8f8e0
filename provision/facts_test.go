package provision

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/clusterctl/clusterctl/provision/internal/testserver"
)

// dialTestServer starts an in-process server for the current user and
// dials it.
func dialTestServer(t *testing.T) *Client {
	t.Helper()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	srv, err := testserver.Start(testserver.Options{Users: []testserver.User{{Name: me.Username, AuthorizedKeys: []ssh.PublicKey{sshPub}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	blk, _ := ssh.MarshalPrivateKey(priv, "")
	keyFile := filepath.Join(dir, "id")
	os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600)
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.Addr())}, srv.HostKey())+"\n"), 0o600)
	c, err := Dial(context.Background(), Config{
		Host: "127.0.0.1", Port: srv.Port(), User: me.Username, IdentityFiles: []string{keyFile},
		KnownHostsFiles: []string{kh}, NoAgent: true, SSHConfigFile: "none", ConnectTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestFactsReadsClusterctlFiles(t *testing.T) {
	c := dialTestServer(t)
	root := t.TempDir()
	etc := filepath.Join(root, "etc", "clusterctl")
	os.MkdirAll(etc, 0o755)
	installed := []byte("{\n  \"etcd\": {\"version\": \"3.5.12\"}\n}\n")
	os.WriteFile(filepath.Join(etc, "installed.json"), installed, 0o644)

	f, err := c.facts(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Installed, installed) || f.LabHost != nil {
		t.Errorf("Installed %q, LabHost %q", f.Installed, f.LabHost)
	}
	lab := []byte(`{"lab":"test"}`)
	os.WriteFile(filepath.Join(etc, "lab-host.json"), lab, 0o644)
	if f, err = c.facts(context.Background(), root); err != nil || !bytes.Equal(f.LabHost, lab) {
		t.Errorf("LabHost %q, %v", f.LabHost, err)
	}
	if f.CPUs < 1 || f.Kernel == "" || f.Tools["sh"] != "" {
		t.Errorf("facts: %+v", f)
	}
}

// The tool check looks where the components will, whatever the login
// user's PATH (without sudo, a non-root user's often lacks /usr/sbin).
func TestFactsFindSbinToolsWithAUserPath(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/iptables"); err != nil {
		t.Skip("no /usr/sbin/iptables on this machine")
	}
	cmd := exec.Command("/bin/sh", "-c", factsScript(t.TempDir()))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFacts(out)
	if err != nil {
		t.Fatal(err)
	}
	if f.Tools["iptables"] != "/usr/sbin/iptables" {
		t.Errorf("tool.iptables = %q with PATH=/usr/bin:/bin, want /usr/sbin/iptables", f.Tools["iptables"])
	}
}

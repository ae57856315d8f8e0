package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/lab"
)

// labHost is the one host of a benchmark lab.
type labHost struct {
	dir   string // the lab folder, also the spec folder
	name  string
	addr  string
	netns string // /run/netns/NAME: its network namespace, for probes on 127.0.0.1
	fs    string // the host's own files, seen from the workstation
}

// labUp makes a one-host lab in dir with `clusterctl lab up`.
func (b *bench) labUp(ctx context.Context, dir string) (*labHost, error) {
	out, err := exec.CommandContext(ctx, b.bin, "lab", "up", "--dir", dir, "--subnet", b.subnet,
		"--control-planes", "1", "--workers", "0").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("lab up: %w\n%s", err, out)
	}
	l, err := lab.Open(dir, nil)
	if err != nil {
		return nil, err
	}
	hosts := l.Hosts()
	if len(hosts) != 1 {
		return nil, fmt.Errorf("lab up made %d hosts, want 1", len(hosts))
	}
	// lab.json names each host's network namespace; the lab package keeps
	// it to itself, so read that one field.
	raw, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		return nil, err
	}
	var st struct {
		Hosts []struct {
			Name  string `json:"name"`
			Netns string `json:"netns"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "lab.json"), err)
	}
	if len(st.Hosts) != 1 || st.Hosts[0].Netns == "" {
		return nil, fmt.Errorf("%s: no network namespace for the host", filepath.Join(dir, "lab.json"))
	}
	return &labHost{
		dir: dir, name: hosts[0].Name, addr: hosts[0].Address,
		netns: filepath.Join("/run/netns", st.Hosts[0].Netns), fs: l.HostDir(hosts[0].Name),
	}, nil
}

// labDown removes the lab even when ctx was cancelled.
func (b *bench) labDown(ctx context.Context, dir string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.bin, "lab", "down", "--dir", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab down %s: %w\n%s", dir, err, out)
	}
	return nil
}

// ssh returns an OpenSSH command that runs command on h.
func (h *labHost) ssh(ctx context.Context, command string) *exec.Cmd {
	return exec.CommandContext(ctx, "ssh", "-F", "/dev/null",
		"-i", filepath.Join(h.dir, "id_ed25519"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+filepath.Join(h.dir, "known_hosts"),
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "root@"+h.addr, command)
}

// kubectlReadyz checks the API server with kubectl and kubeconfig: the
// benchmark's own probe must not be the only witness.
func (b *bench) kubectlReadyz(ctx context.Context, kubeconfig string) error {
	out, err := exec.CommandContext(ctx, b.kubectl, "--kubeconfig", kubeconfig, "--request-timeout=20s",
		"get", "--raw", "/readyz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		return fmt.Errorf("kubectl get --raw /readyz: %q %v", out, err)
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/clusterctl/clusterctl/kubeapi"
	"github.com/clusterctl/clusterctl/lab"
)

// benchLab is a 1+2 lab made with `clusterctl lab up`.
type benchLab struct {
	dir   string
	hosts []labHost
}

type labHost struct {
	name, addr string
	fs         string // the host's own files, seen from the workstation
}

func (b *bench) labUp(ctx context.Context, dir string) (*benchLab, error) {
	out, err := exec.CommandContext(ctx, b.bin, "lab", "up", "--dir", dir, "--subnet", b.subnet,
		"--control-planes", "1", "--workers", "2").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("lab up: %w\n%s", err, out)
	}
	l, err := lab.Open(dir, nil)
	if err != nil {
		return nil, err
	}
	bl := &benchLab{dir: dir}
	for _, h := range l.Hosts() {
		bl.hosts = append(bl.hosts, labHost{name: h.Name, addr: h.Address, fs: l.HostDir(h.Name)})
	}
	return bl, nil
}

// labDown removes the lab even when ctx was cancelled.
func (b *bench) labDown(ctx context.Context, dir string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, b.bin, "lab", "down", "--dir", dir).CombinedOutput(); err != nil {
		fmt.Printf("lab down %s: %v\n%s", dir, err, out)
	}
}

// ssh returns an OpenSSH command that runs command on h.
func (l *benchLab) ssh(ctx context.Context, h labHost, command string) *exec.Cmd {
	return exec.CommandContext(ctx, "ssh", "-F", "/dev/null",
		"-i", filepath.Join(l.dir, "id_ed25519"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+filepath.Join(l.dir, "known_hosts"),
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "root@"+h.addr, command)
}

// readiness checks a cluster the same way for the tool and the floor:
// every node Ready (through the API with the admin kubeconfig) and every
// kube-proxy's /healthz (on the node's address) answering 200.
type readiness struct {
	lab        *benchLab
	kubeconfig string
	http       *http.Client
}

func newReadiness(l *benchLab) (*readiness, error) {
	return &readiness{lab: l, kubeconfig: filepath.Join(l.hosts[0].fs, "etc/kubernetes/admin.conf"),
		http: &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}}, nil
}

// up reports whether everything is up now, and what is not.
func (r *readiness) up(ctx context.Context) (bool, string) {
	c, err := kubeapi.Load(r.kubeconfig)
	if err != nil {
		return false, err.Error()
	}
	defer c.Close()
	for _, h := range r.lab.hosts {
		n, err := c.GetNode(ctx, h.name)
		if err != nil {
			return false, err.Error()
		}
		if ok, why := n.Ready(); !ok {
			return false, h.name + ": " + why
		}
		resp, err := r.http.Get("http://" + h.addr + ":10256/healthz")
		if err != nil {
			return false, h.name + " kube-proxy: " + err.Error()
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, h.name + " kube-proxy: " + resp.Status
		}
	}
	return true, ""
}

// wait polls every 100 ms until up, and returns the time since start.
func (r *readiness) wait(ctx context.Context, start time.Time) (time.Duration, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := r.up(ctx)
		if ok {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w; last: %s", ctx.Err(), why)
		case <-tick.C:
		}
	}
}

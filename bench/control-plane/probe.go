package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterctl/clusterctl/bench/internal/benchkit"
)

// pollEvery is the probes' period: it bounds how late a moment is seen.
const pollEvery = 100 * time.Millisecond

// probes checks a control plane the same way for the tool and the floor:
// kube-apiserver's /readyz and the leader leases from the workstation with
// the admin client certificate, and the controller-manager's and
// scheduler's /healthz on 127.0.0.1 inside the host (where they listen),
// without verifying their self-signed certificates, as the agent does.
type probes struct {
	server string // https://ADDRESS:6443
	pki    string // folder with ca.crt, admin-client.crt and admin-client.key
	api    *http.Client
	inHost *http.Client
}

func newProbes(h *labHost, pki string) *probes {
	return &probes{
		server: "https://" + net.JoinHostPort(h.addr, "6443"),
		pki:    pki,
		inHost: &http.Client{Timeout: time.Second, Transport: &http.Transport{
			DialContext:       netnsDialer(h.netns),
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
		}},
	}
}

// marks are when each probe first passed, since the start; 0 is never.
type marks struct {
	readyz     time.Duration // kube-apiserver /readyz
	kcm, sched time.Duration // controller-manager and scheduler /healthz
	kcmLease   time.Duration // the controller-manager holds its leader lease
	schedLease time.Duration // the scheduler holds its leader lease
}

func (m marks) String() string {
	return fmt.Sprintf("first ok: /readyz %s, kcm /healthz %s, scheduler /healthz %s, kcm lease %s, scheduler lease %s: ready %s",
		benchkit.Secs(m.readyz), benchkit.Secs(m.kcm), benchkit.Secs(m.sched), benchkit.Secs(m.kcmLease), benchkit.Secs(m.schedLease), benchkit.Secs(m.ready()))
}

// ready is when the control plane works: the API server is ready and the
// controller-manager and scheduler lead, so they reached it and run their
// loops. Their /healthz passes before they can reach the API server, so it
// alone does not say that.
func (m marks) ready() time.Duration {
	if m.readyz == 0 || m.kcmLease == 0 || m.schedLease == 0 {
		return 0
	}
	return max(m.readyz, m.kcmLease, m.schedLease)
}

// watch polls until every probe has passed once, or ctx ends (then it
// returns what it saw with ctx's error).
func (p *probes) watch(ctx context.Context, start time.Time) (marks, error) {
	var m marks
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	check := func(mark *time.Duration, pass func() bool) {
		if *mark == 0 && pass() {
			*mark = time.Since(start)
		}
	}
	for {
		check(&m.readyz, func() bool { return p.readyz(ctx) })
		check(&m.kcm, func() bool { return p.ok(ctx, p.inHost, "https://127.0.0.1:10257/healthz") })
		check(&m.sched, func() bool { return p.ok(ctx, p.inHost, "https://127.0.0.1:10259/healthz") })
		if m.readyz != 0 {
			check(&m.kcmLease, func() bool { return p.leads(ctx, "kube-controller-manager") })
			check(&m.schedLease, func() bool { return p.leads(ctx, "kube-scheduler") })
		}
		if m.ready() != 0 && m.kcm != 0 && m.sched != 0 {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-tick.C:
		}
	}
}

// leads says whether someone holds the leader lease of component in
// kube-system.
func (p *probes) leads(ctx context.Context, component string) bool {
	if p.api == nil {
		return false
	}
	url := p.server + "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/" + component
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := p.api.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var lease struct {
		Spec struct {
			HolderIdentity string `json:"holderIdentity"`
		} `json:"spec"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&lease) != nil {
		return false
	}
	return lease.Spec.HolderIdentity != ""
}

// readyz loads the admin credentials once they exist (the tool makes them
// during its apply) and checks /readyz.
func (p *probes) readyz(ctx context.Context) bool {
	if p.api == nil {
		c, err := adminClient(p.pki)
		if err != nil {
			return false
		}
		p.api = c
	}
	return p.ok(ctx, p.api, p.server+"/readyz")
}

func (p *probes) ok(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok"
}

func adminClient(pki string) (*http.Client, error) {
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s: no certificate", filepath.Join(pki, "ca.crt"))
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "admin-client.crt"), filepath.Join(pki, "admin-client.key"))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		DisableKeepAlives: true, // a new connection each time, like a fresh kubectl
	}}, nil
}

// dialResult is what a dial inside a namespace returns.
type dialResult struct {
	c   net.Conn
	err error
}

// netnsDialer dials from inside the network namespace at path. A socket
// stays in the namespace it was made in, so only its creation has to happen
// there: on a locked thread that switches namespace and is never unlocked,
// so the thread ends with the goroutine and no other code runs in it.
func netnsDialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ch := make(chan dialResult, 1)
		go func() {
			runtime.LockOSThread()
			fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				ch <- dialResult{err: fmt.Errorf("open %s: %w", path, err)}
				return
			}
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
			if err != nil {
				ch <- dialResult{err: fmt.Errorf("enter %s: %w", path, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- dialResult{c, err}
		}()
		select {
		case r := <-ch:
			return r.c, r.err
		case <-ctx.Done():
			go func() { // the dial may still succeed: close what it returns
				if r := <-ch; r.c != nil {
					r.c.Close()
				}
			}()
			return nil, ctx.Err()
		}
	}
}

package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/clusterctl/clusterctl/components"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/provision"
)

// etcdCerts reads the etcd client identity from the local PKI.
func (s *Session) etcdCerts() (components.EtcdCerts, error) {
	store := pki.DirStore{Root: s.Store.PKIDir()}
	var c components.EtcdCerts
	var err error
	read := func(p string) []byte {
		b, e := store.Read(p)
		err = errors.Join(err, e)
		return b
	}
	c.CA = read("etcd/ca.crt")
	c.Cert = read(pki.IDEtcdHealthcheck + ".crt")
	c.Key = read(pki.IDEtcdHealthcheck + ".key")
	if err != nil {
		return c, fmt.Errorf("etcd client certificate: %w", err)
	}
	return c, nil
}

// snapshotEtcd saves a snapshot of etcd, taken through host, in the state
// folder and on the host, before the first member of an upgrade changes.
func (s *Session) snapshotEtcd(ctx context.Context, host, fromVersion string) (string, error) {
	cl, ok := s.Client(host)
	if !ok {
		return "", fmt.Errorf("host %s is not connected", host)
	}
	certs, err := s.etcdCerts()
	if err != nil {
		return "", err
	}
	dir := s.Store.SnapshotsDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	name := fmt.Sprintf("etcd-%s-%s-%s.db", s.Cluster.Name(), fromVersion, time.Now().UTC().Format("20060102T150405Z"))
	local := filepath.Join(dir, name)
	tmp := local + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	n, err := components.EtcdSnapshot(ctx, cl, certs, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("etcd snapshot through %s: %w", host, err)
	}
	if err := os.Rename(tmp, local); err != nil {
		return "", err
	}
	remote := "/var/lib/clusterctl/snapshots/" + name
	if _, err := cl.Run(ctx, provision.Cmd{Line: "mkdir -p /var/lib/clusterctl/snapshots && chmod 0700 /var/lib/clusterctl/snapshots"}); err != nil {
		return "", err
	}
	if _, err := cl.Upload(ctx, local, remote, provision.FileOptions{Mode: 0o600}); err != nil {
		return "", fmt.Errorf("copy the etcd snapshot to %s: %w", host, err)
	}
	s.logf("  etcd snapshot (%s) saved to %s and %s:%s", HumanBytes(n), local, host, remote)
	s.emit(Event{Type: EventSnapshot, Host: host, Path: local, Bytes: n, Message: "also on the host at " + remote})
	return local, nil
}

// waitEtcdQuorum waits until every etcd member, asked through its own
// host, answers and sees all members started with a leader.
func (s *Session) waitEtcdQuorum(ctx context.Context, timeout time.Duration) error {
	certs, err := s.etcdCerts()
	if err != nil {
		return err
	}
	var want []string
	for _, h := range s.Cluster.EtcdHosts() {
		want = append(want, h.Name)
	}
	deadline := time.Now().Add(timeout)
	for {
		var errs []error
		for _, h := range want {
			cl, ok := s.Client(h)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: not connected", h))
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := components.EtcdQuorum(cctx, cl, certs, want); err != nil {
				errs = append(errs, fmt.Errorf("etcd on %s: %w", h, err))
			}
			cancel()
		}
		err := errors.Join(errs...)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Second)
	}
}

func (s *Session) gateTimeout() time.Duration {
	if s.GateTimeout > 0 {
		return s.GateTimeout // -gate-timeout
	}
	return s.Cluster.Upgrade().GateTimeout
}

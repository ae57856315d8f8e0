package components

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Dialer opens TCP connections from a host (an SSH tunnel): etcd is asked
// through the host's loopback, so no etcd port needs to be reachable from
// the workstation.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// EtcdCerts is the client identity used to talk to etcd (the health-check
// client certificate and the etcd CA).
type EtcdCerts struct {
	CA, Cert, Key []byte
}

// etcdClient connects to the etcd member on the host behind d.
func etcdClient(ctx context.Context, d Dialer, certs EtcdCerts) (*clientv3.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certs.CA) {
		return nil, errors.New("etcd CA: no PEM certificate")
	}
	pair, err := tls.X509KeyPair(certs.Cert, certs.Key)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	endpoint := fmt.Sprintf("127.0.0.1:%d", EtcdClientPort)
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{"https://" + endpoint},
		DialTimeout: 10 * time.Second,
		TLS:         &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", endpoint)
		})},
		Context: ctx,
	})
}

// EtcdSnapshot streams a snapshot of the etcd member on the host into w and
// returns its size. Taken before the first member of an upgrade changes.
func EtcdSnapshot(ctx context.Context, d Dialer, certs EtcdCerts, w io.Writer) (int64, error) {
	cli, err := etcdClient(ctx, d, certs)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("etcd snapshot: %w", err)
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("etcd snapshot: %w", err)
	}
	return n, nil
}

// EtcdQuorum checks, through the member on the host behind d, that this
// member answers, sees exactly the wanted members, all started voting
// members, and knows a leader. Apply asks every member in turn before an
// upgrade moves on to the next one.
func EtcdQuorum(ctx context.Context, d Dialer, certs EtcdCerts, want []string) error {
	cli, err := etcdClient(ctx, d, certs)
	if err != nil {
		return err
	}
	defer cli.Close()
	ml, err := cli.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd member list: %w", err)
	}
	var names []string
	for _, m := range ml.Members {
		switch {
		case m.Name == "":
			return fmt.Errorf("etcd member %x has not started", m.ID)
		case m.IsLearner:
			return fmt.Errorf("etcd member %s is still a learner", m.Name)
		}
		names = append(names, m.Name)
	}
	slices.Sort(names)
	w := slices.Sorted(slices.Values(want))
	if !slices.Equal(names, w) {
		return fmt.Errorf("etcd members are %s, want %s", strings.Join(names, ", "), strings.Join(w, ", "))
	}
	st, err := cli.Status(ctx, cli.Endpoints()[0])
	if err != nil {
		return fmt.Errorf("etcd status: %w", err)
	}
	if st.Leader == 0 {
		return errors.New("etcd has no leader")
	}
	if len(st.Errors) > 0 {
		return fmt.Errorf("etcd reports: %s", strings.Join(st.Errors, "; "))
	}
	return nil
}

package provision

import (
	"context"
	"net"
)

// DialContext opens a TCP connection from the host to addr through the SSH
// connection (a direct-tcpip channel), like `ssh -L`: the workstation
// reaches a host's loopback-only services, such as etcd's client port,
// without opening any port.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.ssh.DialContext(ctx, network, addr)
	if err != nil {
		return nil, c.fail("tunnel to "+addr, err)
	}
	return conn, nil
}

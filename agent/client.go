package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// ErrNotRunning means nothing answers on the control socket. Starting the
// agent ("clusterctl agent start") helps.
var ErrNotRunning = errors.New("agent not running")

// Client talks to an agent over its control socket.
type Client struct {
	Socket string
}

// Call sends one request and returns the response. A response with OK
// false is returned together with an error carrying its message.
func (c Client) Call(ctx context.Context, req Request) (Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return Response{}, fmt.Errorf("%w: %w", ErrNotRunning, err)
		}
		return Response{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return Response{}, fmt.Errorf("agent %s: %w", req.Op, err)
	}
	line, err := bufio.NewReaderSize(conn, 64<<10).ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Response{}, fmt.Errorf("agent %s: %w", req.Op, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("agent %s: bad response: %w", req.Op, err)
	}
	if !resp.OK {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// Ping returns the running agent's identity.
func (c Client) Ping(ctx context.Context) (*AgentInfo, error) {
	resp, err := c.Call(ctx, Request{Op: OpPing})
	if err != nil {
		return nil, err
	}
	if resp.Agent == nil {
		return nil, errors.New("agent ping: no identity in response")
	}
	return resp.Agent, nil
}

// Status returns every component's status.
func (c Client) Status(ctx context.Context) (Response, error) {
	return c.Call(ctx, Request{Op: OpStatus})
}

// Reload makes the agent re-read the current links.
func (c Client) Reload(ctx context.Context) (Response, error) {
	return c.Call(ctx, Request{Op: OpReload})
}

// Restart stops and starts one component.
func (c Client) Restart(ctx context.Context, name string) (Response, error) {
	return c.Call(ctx, Request{Op: OpRestart, Name: name})
}

// Stop stops one component until Start, Restart or a changed unit.
func (c Client) Stop(ctx context.Context, name string) (Response, error) {
	return c.Call(ctx, Request{Op: OpStop, Name: name})
}

// Start starts a stopped component.
func (c Client) Start(ctx context.Context, name string) (Response, error) {
	return c.Call(ctx, Request{Op: OpStart, Name: name})
}

// WaitHealthy is the health gate (see Agent.WaitHealthy).
func (c Client) WaitHealthy(ctx context.Context, name string, gen, successes int, timeout time.Duration) (Response, error) {
	return c.Call(ctx, Request{Op: OpWaitHealthy, Name: name, Generation: gen, Successes: successes, Timeout: Duration(timeout)})
}

// Shutdown makes the agent exit; components keep running.
func (c Client) Shutdown(ctx context.Context) (*AgentInfo, error) {
	resp, err := c.Call(ctx, Request{Op: OpShutdown})
	if err != nil {
		return nil, err
	}
	return resp.Agent, nil
}

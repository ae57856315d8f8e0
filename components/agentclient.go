package components

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/kubeapi"
	"github.com/clusterctl/clusterctl/pki"
)

// AgentClient speaks to a host's agent with the typed protocol of package
// agent (Request, Response), carried over the host connection: the request
// goes as the one argument of `clusterctl agent call` on the host, the
// response comes back as one JSON line. It is the only place that builds
// that command line.
type AgentClient struct{ H Host }

// ErrAgentCall means the host's clusterctl printed no agent response: it is
// missing, or older than the "agent call" protocol (it prints its help
// instead). Installing the agent (apply) cures both. It comes wrapped
// together with agent.ErrNotRunning: nothing on the host answers.
var ErrAgentCall = errors.New("no agent response")

// Call carries out one request. A response that is not OK is returned with
// an error naming the host and the operation; one from a host where
// nothing answers (no agent, no clusterctl binary, or one that predates
// the call) wraps agent.ErrNotRunning.
func (c AgentClient) Call(ctx context.Context, req agent.Request) (agent.Response, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return agent.Response{}, err
	}
	out, runErr := c.H.Run(ctx, LayoutOf(c.H).agentCommand("call", string(b)))
	var resp agent.Response
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	last := lines[len(lines)-1]
	if jerr := json.Unmarshal(last, &resp); jerr != nil {
		if ctx.Err() != nil {
			return agent.Response{}, fmt.Errorf("%s: agent %s: %w", c.H.Name(), req.Op, ctx.Err())
		}
		why := runErr
		switch {
		case why != nil:
		case len(bytes.TrimSpace(out)) == 0:
			why = errors.New("it printed nothing")
		default:
			// An older clusterctl prints the agent command's help.
			why = fmt.Errorf("%s does not know 'agent call' (an older clusterctl?); it printed %q", AgentBinary, firstLine(out))
		}
		return agent.Response{}, fmt.Errorf("%s: agent %s: %w: %w: %w", c.H.Name(), req.Op, agent.ErrNotRunning, ErrAgentCall, why)
	}
	if err := resp.Err(); err != nil {
		return resp, fmt.Errorf("%s: agent %s: %w", c.H.Name(), req.Op, err)
	}
	return resp, nil
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return line
}

// Ping is the running agent's identity.
func (c AgentClient) Ping(ctx context.Context) (*agent.AgentInfo, error) {
	resp, err := c.Call(ctx, agent.Request{Op: agent.OpPing})
	if err != nil {
		return nil, err
	}
	if resp.Agent == nil {
		return nil, fmt.Errorf("%s: agent ping: no identity in the response", c.H.Name())
	}
	return resp.Agent, nil
}

// Logs returns the last lines of a component's log ("agent" for the
// agent's own), read on the host even when the agent is down, and the
// offset LogsAfter continues from.
func (c AgentClient) Logs(ctx context.Context, component string, lines int) ([]string, int64, error) {
	resp, err := c.Call(ctx, agent.Request{Op: agent.OpLogs, Name: component, Lines: lines})
	return resp.Log, resp.Offset, err
}

// LogsAfter returns the whole lines appended to a component's log after
// offset (all of it when the log was rotated since), and the next offset.
func (c AgentClient) LogsAfter(ctx context.Context, component string, offset int64) ([]string, int64, error) {
	resp, err := c.Call(ctx, agent.Request{Op: agent.OpLogs, Name: component, Offset: &offset})
	if err != nil {
		return nil, offset, err
	}
	return resp.Log, resp.Offset, nil
}

// Status is every component as the agent sees it.
func (c AgentClient) Status(ctx context.Context) (agent.Response, error) {
	return c.Call(ctx, agent.Request{Op: agent.OpStatus})
}

// StartAgent starts the agent from the installed binary unless it runs it
// already; a new agent adopts the running components.
// An agent under a rooted layout (a test host) is never a system service.
func (c AgentClient) StartAgent(ctx context.Context) error {
	req := agent.Request{Op: agent.OpStartAgent}
	if c.H.Root() != "" {
		req.Mode = agent.ModeDetached
	}
	_, err := c.Call(ctx, req)
	return err
}

// StopAgent stops the agent; components keep running.
func (c AgentClient) StopAgent(ctx context.Context) error {
	_, err := c.Call(ctx, agent.Request{Op: agent.OpStopAgent})
	return err
}

// Switch points a component at a generation; only it restarts.
func (c AgentClient) Switch(ctx context.Context, component string, gen int) error {
	_, err := c.Call(ctx, agent.Request{Op: agent.OpSwitch, Name: component, Generation: gen})
	return err
}

// Unlink removes a component's current generation: the agent stops it.
func (c AgentClient) Unlink(ctx context.Context, component string) error {
	_, err := c.Call(ctx, agent.Request{Op: agent.OpUnlink, Name: component})
	return err
}

// WaitHealthy is the health gate. On failure the report says the
// component's state, its last probe error and its last log lines.
func (c AgentClient) WaitHealthy(ctx context.Context, component string, gen int, timeout time.Duration) (report string, err error) {
	resp, err := c.Call(ctx, agent.Request{Op: agent.OpWaitHealthy, Name: component, Generation: gen, Timeout: agent.Duration(timeout)})
	if err == nil {
		return "", nil
	}
	var b strings.Builder
	b.WriteString(err.Error())
	for _, st := range resp.Components {
		fmt.Fprintf(&b, "\n%s: generation %d %s, %d restarts", st.Name, st.Generation, st.State, st.Restarts)
		if st.ProbeError != "" {
			fmt.Fprintf(&b, "; last probe: %s", st.ProbeError)
		}
	}
	if len(resp.Log) > 0 {
		fmt.Fprintf(&b, "\nlast log lines of %s:", component)
		for _, l := range resp.Log {
			b.WriteString("\n  " + l)
		}
	}
	return b.String(), err
}

// The Node operations go through a control-plane host's admin kubeconfig.
func nodeRequest(op, node string) agent.Request {
	return agent.Request{Op: op, Node: node, Kubeconfig: path.Join(pki.HostKubeDir, pki.KubeconfigAdmin)}
}

// SyncNode gives a node the labels and taints the spec wants, through the
// administrator kubeconfig on a control-plane host (cp): NodeRestriction
// keeps a kubelet from setting role labels and from changing taints.
func SyncNode(ctx context.Context, cp Host, node string, m NodeMeta) error {
	req := nodeRequest(agent.OpNodeMeta, node)
	req.Labels = m.Labels
	for _, t := range m.Taints {
		req.Taints = append(req.Taints, agent.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
	}
	if _, err := (AgentClient{cp}).Call(ctx, req); err != nil {
		return fmt.Errorf("node %s: set its labels and taints: %w", node, err)
	}
	return nil
}

// DrainOptions say how long a drain may take and what it may evict that
// kubectl drain refuses by default: the spec's upgrade block.
type DrainOptions struct {
	Timeout            time.Duration
	Force              bool // pods no controller manages (upgrade.drain_force)
	DeleteEmptyDirData bool // pods with emptyDir volumes (upgrade.drain_delete_emptydir_data)
}

// DrainNode cordons a node and evicts its pods, through a control-plane
// host's admin kubeconfig, before its kubelet changes or its host leaves.
// A drain refused for pods it would lose (unmanaged, emptyDir data)
// returns an error that unwraps to a *kubeapi.DrainRefusedError listing
// them; it evicted nothing and did not leave the node cordoned.
func DrainNode(ctx context.Context, cp Host, node string, o DrainOptions) error {
	req := nodeRequest(agent.OpDrain, node)
	req.Timeout = agent.Duration(o.Timeout)
	req.Force, req.DeleteEmptyDirData = o.Force, o.DeleteEmptyDirData
	resp, err := (AgentClient{cp}).Call(ctx, req)
	if err == nil {
		return nil
	}
	if d := resp.Drain; d != nil && len(d.Refused) > 0 {
		refused := &kubeapi.DrainRefusedError{Node: node, Evicted: d.Evicted, Cordoned: d.Cordoned}
		for _, p := range d.Refused {
			refused.Pods = append(refused.Pods, kubeapi.RefusedPod{Namespace: p.Namespace, Name: p.Name, Reasons: p.Reasons})
		}
		err = drainRefused{err, refused}
	}
	return fmt.Errorf("drain node %s: %w", node, err)
}

// drainRefused keeps the agent's message (host, operation, and what the
// drain said) and gives the refusal back as its type.
type drainRefused struct {
	error
	refused *kubeapi.DrainRefusedError
}

func (e drainRefused) Unwrap() []error { return []error{e.error, e.refused} }

// UncordonNode makes a node schedulable again.
func UncordonNode(ctx context.Context, cp Host, node string) error {
	if _, err := (AgentClient{cp}).Call(ctx, nodeRequest(agent.OpUncordon, node)); err != nil {
		return fmt.Errorf("uncordon node %s: %w", node, err)
	}
	return nil
}

// DeleteNode deletes the Node of a host that left the spec, once its
// kubelet is gone.
func DeleteNode(ctx context.Context, cp Host, node string) error {
	if _, err := (AgentClient{cp}).Call(ctx, nodeRequest(agent.OpDeleteNode, node)); err != nil {
		return fmt.Errorf("delete node %s: %w", node, err)
	}
	return nil
}

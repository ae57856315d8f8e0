package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/kubeapi"
)

// newAgentCallCmd is the host end of the workstation's typed agent client:
// one JSON agent.Request as the argument, one JSON agent.Response line on
// standard output. It exits 0 whenever it printed a response (OK or not),
// so the workstation reads what happened from the response alone.
func newAgentCallCmd(paths *agent.Paths) *cobra.Command {
	return &cobra.Command{
		Use:    "call REQUEST",
		Short:  "Carry out one JSON agent request and print the JSON response (the workstation's client)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req agent.Request
			if err := json.Unmarshal([]byte(args[0]), &req); err != nil {
				return fmt.Errorf("agent call: bad request: %w", err)
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(agentCall(cmd.Context(), *paths, req))
		},
	}
}

// agentCall carries out a request: the supervisor's operations through the
// running agent's socket, the others here.
func agentCall(ctx context.Context, p agent.Paths, req agent.Request) agent.Response {
	client := agent.Client{Socket: p.Socket()}
	resp, err := func() (agent.Response, error) {
		switch req.Op {
		case agent.OpStartAgent:
			exe, err := agentSelfExe()
			if err != nil {
				return agent.Response{}, err
			}
			mode := req.Mode
			if mode == "" {
				mode = agent.ModeAuto
			}
			res, err := agent.Start(ctx, agent.StartOptions{Paths: p, Exe: exe, Args: agentRunArgs(p), Mode: mode})
			return agent.Response{OK: err == nil, Start: &res}, err
		case agent.OpStopAgent:
			return agent.Response{OK: true}, agent.StopAgent(ctx, p, "")
		case agent.OpSwitch, agent.OpUnlink:
			if err := agent.ValidName(req.Name); err != nil {
				return agent.Response{}, err
			}
			if err := setCurrent(filepath.Join(p.ConfigRoot, req.Name), req.Op == agent.OpSwitch, req.Generation); err != nil {
				return agent.Response{}, err
			}
			return client.Reload(ctx)
		case agent.OpNodeMeta, agent.OpDrain, agent.OpUncordon, agent.OpDeleteNode:
			return nodeCall(ctx, req)
		}
		return client.Call(ctx, req)
	}()
	if err != nil {
		resp.OK, resp.Error = false, err.Error()
		resp.NotRunning = errors.Is(err, agent.ErrNotRunning)
	}
	return resp
}

// setCurrent points a component's current link at a generation, atomically
// (a new link renamed over the old one), or removes it.
func setCurrent(dir string, on bool, gen int) error {
	current := filepath.Join(dir, "current")
	if !on {
		if err := os.Remove(current); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if gen <= 0 {
		return fmt.Errorf("switch: no generation given")
	}
	if _, err := os.Stat(filepath.Join(dir, strconv.Itoa(gen), agent.UnitFile)); err != nil {
		return fmt.Errorf("switch to generation %d: %w", gen, err)
	}
	tmp := filepath.Join(dir, ".current.tmp")
	os.Remove(tmp)
	if err := os.Symlink(strconv.Itoa(gen), tmp); err != nil {
		return err
	}
	return os.Rename(tmp, current)
}

// nodeCall does a Node operation with an administrator kubeconfig.
func nodeCall(ctx context.Context, req agent.Request) (agent.Response, error) {
	if req.Node == "" {
		return agent.Response{}, fmt.Errorf("%s: no node given", req.Op)
	}
	c, err := kubeapi.Load(req.Kubeconfig)
	if err != nil {
		return agent.Response{}, err
	}
	defer c.Close()
	switch req.Op {
	case agent.OpNodeMeta:
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		ts := make([]kubeapi.Taint, len(req.Taints))
		for i, t := range req.Taints {
			ts[i] = kubeapi.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect}
		}
		changed, err := c.SyncNodeMeta(ctx, req.Node, req.Labels, ts)
		if err != nil {
			return agent.Response{}, fmt.Errorf("node %s: %w", req.Node, err)
		}
		return agent.Response{OK: true, Changed: changed}, nil
	case agent.OpDrain:
		timeout := time.Duration(req.Timeout)
		if timeout <= 0 {
			timeout = 5 * time.Minute
		}
		rep, err := c.Drain(ctx, req.Node, timeout)
		return agent.Response{OK: err == nil, Drain: &agent.DrainResult{Evicted: rep.Evicted, Skipped: rep.Skipped}}, err
	case agent.OpUncordon:
		return agent.Response{OK: true}, c.Cordon(ctx, req.Node, false)
	}
	return agent.Response{OK: true}, c.DeleteNode(ctx, req.Node)
}

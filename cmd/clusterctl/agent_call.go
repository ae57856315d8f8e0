package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/kubeapi"
)

// newAgentCallCmd is the host end of the workstation's typed agent client
// (components.AgentClient): one JSON agent.Request as the argument, one
// JSON agent.Response line on standard output. It exits 0 whenever it
// printed a response (OK or not, a request it cannot read included), so the
// workstation reads what happened from the response alone; non-zero only
// when it could not write one.
func newAgentCallCmd(paths *agent.Paths) *cobra.Command {
	return &cobra.Command{
		Use:    "call REQUEST",
		Short:  "Carry out one JSON agent request and print the JSON response (the workstation's client)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return json.NewEncoder(cmd.OutOrStdout()).Encode(agentCallJSON(cmd.Context(), *paths, []byte(args[0])))
		},
	}
}

// agentCallJSON decodes exactly one request and carries it out.
func agentCallJSON(ctx context.Context, p agent.Paths, raw []byte) agent.Response {
	var req agent.Request
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&req); err != nil {
		return agent.Response{Error: "agent call: bad request: " + err.Error()}
	}
	if dec.More() {
		return agent.Response{Error: "agent call: bad request: more than one JSON value"}
	}
	if req.Op == "" {
		return agent.Response{Error: "agent call: bad request: no op"}
	}
	return agentCall(ctx, p, req)
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
		case agent.OpLogs:
			return logsCall(p, req)
		case agent.OpNodeMeta, agent.OpDrain, agent.OpUncordon, agent.OpDeleteNode:
			return nodeCall(ctx, req)
		case agent.OpAddonPrune:
			return addonPruneCall(ctx, req)
		case agent.OpRewriteSecrets:
			return rewriteSecretsCall(ctx, req) // agent_secrets.go
		case agent.OpPing, agent.OpStatus, agent.OpReload, agent.OpRestart, agent.OpStop, agent.OpStart, agent.OpWaitHealthy, agent.OpShutdown:
			return client.Call(ctx, req)
		}
		return agent.Response{}, fmt.Errorf("agent call: unknown op %q", req.Op)
	}()
	if err != nil {
		resp.OK, resp.Error = false, err.Error()
		resp.NotRunning = errors.Is(err, agent.ErrNotRunning)
	}
	return resp
}

// maxLogRead bounds what one logs request with an offset returns.
const maxLogRead = 1 << 20

// logsCall reads a log file directly, so it works with the agent down:
// the last Lines lines, or the whole lines appended after Offset (from the
// start of the file when it shrank: it was rotated). Response.Offset is
// where the next read continues.
func logsCall(p agent.Paths, req agent.Request) (agent.Response, error) {
	if req.Name != "agent" {
		if err := agent.ValidName(req.Name); err != nil {
			return agent.Response{}, err
		}
	}
	path := p.LogFile(req.Name)
	f, err := os.Open(path)
	if err != nil {
		return agent.Response{}, fmt.Errorf("logs of %s: %w", req.Name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return agent.Response{}, fmt.Errorf("logs of %s: %w", req.Name, err)
	}
	if req.Offset == nil {
		n := req.Lines
		if n <= 0 {
			n = 100
		}
		lines, err := agent.TailLines(path, n)
		if err != nil {
			return agent.Response{}, fmt.Errorf("logs of %s: %w", req.Name, err)
		}
		return agent.Response{OK: true, Log: lines, Offset: st.Size()}, nil
	}
	off := *req.Offset
	if off < 0 || off > st.Size() {
		off = 0
	}
	buf := make([]byte, min(st.Size()-off, maxLogRead))
	n, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return agent.Response{}, fmt.Errorf("logs of %s: %w", req.Name, err)
	}
	buf = buf[:n]
	// Whole lines only, unless one line alone fills the read.
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i+1]
	} else if len(buf) < maxLogRead {
		buf = nil
	}
	resp := agent.Response{OK: true, Offset: off + int64(len(buf))}
	if len(buf) > 0 {
		resp.Log = strings.Split(strings.TrimSuffix(string(buf), "\n"), "\n")
	}
	return resp, nil
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
		rep, err := c.Drain(ctx, req.Node, kubeapi.DrainOptions{Timeout: time.Duration(req.Timeout), Force: req.Force, DeleteEmptyDirData: req.DeleteEmptyDirData})
		res := &agent.DrainResult{Evicted: rep.Evicted, Skipped: rep.Skipped}
		var re *kubeapi.DrainRefusedError
		if errors.As(err, &re) {
			res.Cordoned = re.Cordoned
			for _, p := range re.Pods {
				res.Refused = append(res.Refused, agent.DrainRefusal{Namespace: p.Namespace, Name: p.Name, Reasons: p.Reasons})
			}
		}
		return agent.Response{OK: err == nil, Drain: res}, err
	case agent.OpUncordon:
		return agent.Response{OK: true}, c.Cordon(ctx, req.Node, false)
	}
	return agent.Response{OK: true}, c.DeleteNode(ctx, req.Node)
}

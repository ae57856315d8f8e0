package agent

import (
	"errors"
	"os"
	"time"
)

// The control socket speaks JSON lines: the client writes one Request object
// and a newline, the agent answers with one Response object and a newline.
// A connection may carry several requests in turn. The same Request and
// Response travel over SSH as "clusterctl agent call REQUEST" (the
// workstation's components.AgentClient), and "agent ctl ... -json" prints a
// Response for a person on the host.

// Request operations.
const (
	OpPing        = "ping"         // agent identity; used to detect a running agent and an upgrade
	OpStatus      = "status"       // every component
	OpReload      = "reload"       // re-read every current link; restart what changed
	OpRestart     = "restart"      // Name: stop and start again
	OpStop        = "stop"         // Name: stop and keep stopped until start, restart or a changed unit
	OpStart       = "start"        // Name: start a stopped component
	OpWaitHealthy = "wait-healthy" // Name, Generation, Successes, Timeout: the health gate
	OpShutdown    = "shutdown"     // the agent exits; components keep running
)

// Operations that are not the supervisor's: "clusterctl agent call" (the
// workstation's typed client over SSH) carries them out itself on the host,
// and forwards the ones above to the running agent's socket.
const (
	OpStartAgent = "start-agent" // Mode: start the agent unless it runs this binary already (it adopts running components)
	OpStopAgent  = "stop-agent"  // stop the agent (systemctl where installed); components keep running
	OpSwitch     = "switch"      // Name, Generation: point Name's current link at Generation atomically, then reload
	OpUnlink     = "unlink"      // Name: remove Name's current link, then reload (the agent stops it)
	OpLogs       = "logs"        // Name ("agent" too), Lines: the log's last lines; with Offset: the lines appended after that byte offset
	OpNodeMeta   = "node-meta"   // Kubeconfig, Node, Labels, Taints: the Node's managed labels and taints
	OpDrain      = "drain"       // Kubeconfig, Node, Timeout, Force, DeleteEmptyDirData: cordon and evict (PodDisruptionBudgets respected)
	OpUncordon   = "uncordon"    // Kubeconfig, Node: schedulable again
	OpDeleteNode = "delete-node" // Kubeconfig, Node: delete the Node of a host that left (one already gone is fine)
	OpAddonPrune = "addon-prune" // Kubeconfig, Name: delete every object of add-on Name (it was turned off); Log lists them
	// Kubeconfig: write every Secret back unchanged, so the API server
	// stores each with its current encryption key; Log says how many.
	OpRewriteSecrets = "rewrite-secrets"
)

// Request is one control request.
type Request struct {
	Op         string   `json:"op"`
	Name       string   `json:"name,omitempty"`
	Generation int      `json:"generation,omitempty"` // wait-healthy: 0 means whatever is current
	Successes  int      `json:"successes,omitempty"`  // wait-healthy: passing probes in a row; default 3
	Timeout    Duration `json:"timeout,omitempty"`    // wait-healthy: default 120s; drain: default 5m

	// Fields of the "agent call" operations.
	Mode       string            `json:"mode,omitempty"`       // start-agent: auto (default), systemd, detached
	Lines      int               `json:"lines,omitempty"`      // logs: how many last lines; default 100
	Offset     *int64            `json:"offset,omitempty"`     // logs: instead, the whole lines appended after this byte offset
	Kubeconfig string            `json:"kubeconfig,omitempty"` // node-meta, drain, uncordon: an administrator kubeconfig on the host
	Node       string            `json:"node,omitempty"`       // node-meta, drain, uncordon: the Node's name
	Labels     map[string]string `json:"labels,omitempty"`     // node-meta: labels the node must have
	Taints     []Taint           `json:"taints,omitempty"`     // node-meta: taints the node must have
	// drain: also evict pods no controller manages, pods with emptyDir
	// volumes (both refused by default, as kubectl drain does).
	Force              bool `json:"force,omitempty"`
	DeleteEmptyDirData bool `json:"delete_emptydir_data,omitempty"`
}

// Taint is a node taint (node-meta).
type Taint struct {
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Effect string `json:"effect"`
}

// Response is the answer to a Request. OK false comes with Error; a failed
// wait-healthy also carries the component's status and its last log lines.
type Response struct {
	OK         bool              `json:"ok"`
	Error      string            `json:"error,omitempty"`
	Agent      *AgentInfo        `json:"agent,omitempty"`
	Components []ComponentStatus `json:"components,omitempty"`
	Changes    []Change          `json:"changes,omitempty"`
	Log        []string          `json:"log,omitempty"`

	// Set by "agent call".
	NotRunning bool         `json:"not_running,omitempty"` // nothing answers on the control socket (ErrNotRunning)
	Start      *StartResult `json:"start,omitempty"`       // start-agent
	Drain      *DrainResult `json:"drain,omitempty"`       // drain, also when it failed
	Changed    bool         `json:"changed,omitempty"`     // node-meta: the Node was patched
	Offset     int64        `json:"offset,omitempty"`      // logs: where the next read (Request.Offset) continues
}

// DrainResult is what a drain did. A refused drain lists the pods it
// would not evict (then nothing was evicted unless a refused pod came
// during the drain), and Cordoned when its cordon could not be undone.
type DrainResult struct {
	Evicted  []string       `json:"evicted,omitempty"`
	Skipped  []string       `json:"skipped,omitempty"` // "ns/name (reason)"
	Refused  []DrainRefusal `json:"refused,omitempty"`
	Cordoned bool           `json:"cordoned,omitempty"`
}

// DrainRefusal is a pod a drain refused to evict, and why ("not managed by
// a controller", "uses emptyDir volume data").
type DrainRefusal struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Reasons   []string `json:"reasons"`
}

// Err is the response's error: nil when OK, wrapping ErrNotRunning when
// nothing answered on the control socket.
func (r Response) Err() error {
	switch {
	case r.OK:
		return nil
	case r.NotRunning:
		if r.Error == "" {
			return ErrNotRunning
		}
		return notRunningError(r.Error)
	case r.Error == "":
		return errors.New("request failed")
	}
	return errors.New(r.Error)
}

// notRunningError is an ErrNotRunning that kept its message through JSON.
type notRunningError string

func (e notRunningError) Error() string        { return string(e) }
func (e notRunningError) Is(target error) bool { return target == ErrNotRunning }

// AgentInfo identifies the running agent.
type AgentInfo struct {
	PID     int       `json:"pid"`
	Version string    `json:"version"`
	Exe     string    `json:"exe"`
	ExeHash string    `json:"exe_sha256"` // of the binary it was started from; differs after an upgrade
	Started time.Time `json:"started"`
	Paths   struct {
		ConfigRoot string `json:"config_root"`
		RunDir     string `json:"run_dir"`
		LogDir     string `json:"log_dir"`
	} `json:"paths"`
}

// Component states.
const (
	StateStarting = "starting" // process running, no probe passed yet (or waiting for After components)
	StateRunning  = "running"  // process running and a probe has passed since it started
	StateStopping = "stopping" // stop signal sent
	StateBackoff  = "backoff"  // exited; restart scheduled at NextStart
	StateFailed   = "failed"   // cannot start (bad unit, exec failed); retried with backoff where possible
	StateStopped  = "stopped"  // stopped on request
)

// ComponentStatus is one component as the agent sees it.
type ComponentStatus struct {
	Name       string     `json:"name"`
	Generation int        `json:"generation"` // of the running process, else of the current unit
	Version    string     `json:"version,omitempty"`
	UnitHash   string     `json:"unit_hash,omitempty"`
	State      string     `json:"state"`
	PID        int        `json:"pid,omitempty"`
	Since      *time.Time `json:"since,omitempty"` // start of the running process
	Adopted    bool       `json:"adopted,omitempty"`
	WaitingFor []string   `json:"waiting_for,omitempty"` // After components not yet healthy
	NextStart  *time.Time `json:"next_start,omitempty"`  // backoff
	Restarts   int        `json:"restarts"`              // processes started after the first, for any reason
	LastExit   *ExitInfo  `json:"last_exit,omitempty"`
	Healthy    bool       `json:"healthy"`
	HealthType string     `json:"health_type,omitempty"`
	Passes     int        `json:"passes"` // passing probes in a row for the running process
	LastProbe  *time.Time `json:"last_probe,omitempty"`
	ProbeError string     `json:"probe_error,omitempty"`
	Error      string     `json:"error,omitempty"` // unit or start error
}

// ExitInfo describes how a process ended.
type ExitInfo struct {
	Time time.Time `json:"time"`
	// Code is the exit status, or -1 when the process was killed by a signal
	// or its status is unknown (an adopted process is not our child).
	Code   int    `json:"code"`
	Signal string `json:"signal,omitempty"`
	Reason string `json:"reason"` // human summary: "exit status 1", "signal: killed", ...
}

// Change is what a reload did to one component.
type Change struct {
	Name           string `json:"name"`
	Action         string `json:"action"` // start, restart, stop, adopt, unchanged
	Generation     int    `json:"generation,omitempty"`
	FromGeneration int    `json:"from_generation,omitempty"`
	Error          string `json:"error,omitempty"`
}

// Change actions.
const (
	ActionStart     = "start"
	ActionRestart   = "restart"
	ActionStop      = "stop"
	ActionAdopt     = "adopt"
	ActionUnchanged = "unchanged"
)

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func selfInfo(p Paths, version, exe, hash string, started time.Time) *AgentInfo {
	ai := &AgentInfo{PID: os.Getpid(), Version: version, Exe: exe, ExeHash: hash, Started: started}
	ai.Paths.ConfigRoot, ai.Paths.RunDir, ai.Paths.LogDir = p.ConfigRoot, p.RunDir, p.LogDir
	return ai
}

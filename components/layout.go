package components

import (
	"path"
	"strings"

	"github.com/clusterctl/clusterctl/agent"
)

// Layout places clusterctl's on-host paths (the constants of this package:
// ConfigRoot, PkgRoot, AgentBinary, ...) under a root folder. On a real host
// the root is empty and every path is what DESIGN.md lists; a local test
// host (internal/localhost) uses a temporary folder, so the installer runs
// unchanged against the workstation's own filesystem without root.
//
// Paths recorded in installed.json and written into configuration stay the
// host paths; only the installer's own file operations go through Path.
type Layout struct{ Root string }

// LayoutOf is the layout of a host.
func LayoutOf(h Host) Layout { return Layout{Root: h.Root()} }

// Path is where the host path p is on this layout.
func (l Layout) Path(p string) string {
	if l.Root == "" {
		return p
	}
	return path.Join(l.Root, p)
}

// HostPath is the inverse of Path: the host path of a path on this layout.
func (l Layout) HostPath(p string) string {
	if l.Root == "" {
		return p
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(p, l.Root), "/")
}

// Agent is where the agent keeps its units, state and logs.
func (l Layout) Agent() agent.Paths {
	return agent.Paths{ConfigRoot: l.Path(ConfigRoot), RunDir: l.Path(RunDir), LogDir: l.Path(LogDir)}
}

// agentCommand is the command line of the host's clusterctl agent; a
// rooted layout passes the agent its folders.
func (l Layout) agentCommand(args ...string) string {
	argv := []string{l.Path(AgentBinary), "agent"}
	if l.Root != "" {
		p := l.Agent()
		argv = append(argv, "--config-root", p.ConfigRoot, "--run-dir", p.RunDir, "--log-dir", p.LogDir)
	}
	return shellJoin(append(argv, args...)...)
}

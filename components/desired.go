package components

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// DesiredAll renders every component on every host it runs on, in rollout
// order. Components without a renderer yet are not part of the result.
func DesiredAll(in Input) ([]Desired, error) {
	var out []Desired
	for _, sp := range Registry() {
		comp, render := sp.Name, sp.Render
		if render == nil {
			continue
		}
		hosts := in.Cluster.HostsRunning(comp)
		if sp.Hosts != nil {
			hosts = sp.Hosts(in.Cluster)
		}
		for _, h := range hosts {
			d, err := render(in, h)
			if err != nil {
				return nil, fmt.Errorf("%s on %s: %w", comp, h.Name, err)
			}
			if c, ok := in.Cluster.Component(comp); ok {
				for k := range c.ExtraArgs {
					if c.IsSensitiveArg(k) {
						if d.SensitiveArgs == nil {
							d.SensitiveArgs = map[string]bool{}
						}
						d.SensitiveArgs["--"+k] = true
					}
				}
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// AgentBinary describes the clusterctl binary that becomes the agent on
// every host: the running executable, whose digest is its version.
type AgentBinaryFile struct {
	Local  string
	SHA256 string
	Size   int64
}

// LocalAgentBinary returns the running clusterctl executable and its
// digest. Hosts run the same binary as the workstation (linux/amd64).
func LocalAgentBinary() (AgentBinaryFile, error) {
	exe, err := os.Executable()
	if err != nil {
		return AgentBinaryFile{}, fmt.Errorf("find the clusterctl binary to install as the agent: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return AgentBinaryFile{}, fmt.Errorf("read the clusterctl binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return AgentBinaryFile{}, fmt.Errorf("read the clusterctl binary: %w", err)
	}
	return AgentBinaryFile{Local: exe, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// AgentDesired is the agent on one host.
func AgentDesired(host, address string, bin AgentBinaryFile) Desired {
	return Desired{
		Component: AgentComponent, Host: host, Address: address,
		Version: "sha256:" + bin.SHA256[:12],
		Artifacts: []Artifact{{Component: AgentComponent, Name: "clusterctl", Local: bin.Local, SHA256: bin.SHA256,
			Size: bin.Size, Dest: AgentBinary, Mode: 0o755}},
	}
}

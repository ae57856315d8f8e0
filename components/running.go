package components

import (
	"context"
	"fmt"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/plan"
)

// CheckRunning asks the host's agent what runs and adds to the observed
// objects what is not as installed.json says: an agent that does not answer
// (a host rebooted without systemd, say), or a component that is stopped,
// failed or crash-looping. A plan then shows them as drift, and apply
// starts the agent or installs the component's generation again.
func CheckRunning(ctx context.Context, h Host, inst Installed, objs []plan.Object) error {
	if len(inst.Components) == 0 {
		return nil
	}
	resp, err := AgentClient{h}.Status(ctx)
	if err != nil {
		// Whatever the cause (no agent, a hung one, an older binary), apply
		// starts it again; the words stay the same so a saved plan's
		// fingerprint does not change with an error message.
		why := "the agent is not running"
		for i := range objs {
			if objs[i].Name == AgentComponent {
				objs[i].Drift = append(objs[i].Drift, why)
			}
		}
		return nil
	}
	states := map[string]agent.ComponentStatus{}
	for _, c := range resp.Components {
		states[c.Name] = c
	}
	for i := range objs {
		name := objs[i].Name
		if name == AgentComponent {
			continue
		}
		st, ok := states[name]
		switch {
		case !ok:
			objs[i].Drift = append(objs[i].Drift, "the agent does not run it")
		case st.State == agent.StateFailed || st.State == agent.StateStopped ||
			st.State == agent.StateBackoff && st.Restarts >= agent.CrashLoopExits:
			objs[i].Drift = append(objs[i].Drift, fmt.Sprintf("not running on the host (%s, %d restarts)", st.State, st.Restarts))
		}
	}
	return nil
}

package components

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/spec"
)

// Spec is what clusterctl knows of one component besides what it renders:
// its place in the order, its hooks around a change on a host, the tools
// its removal needs and the data -keep-data keeps. The executor knows
// hooks, not names.
type Spec struct {
	Name string
	// Render makes the component's desired state on a host (nil for the
	// agent, which is the clusterctl binary itself).
	Render func(Input, spec.Host) (Desired, error)
	// Rule orders its changes (workerBatch: upgrade.worker_batch_size).
	Rule func(workerBatch int) plan.Rule
	// RemoveTools are the host tools its cleanup runs.
	RemoveTools []string
	// KeptData are the data folders destroy -keep-data keeps.
	KeptData []string
	Hooks    Hooks
	// Hosts, when set, picks the hosts the component runs on instead of
	// its spec component block (add-ons: one control-plane host).
	Hosts func(*spec.Cluster) []spec.Host
}

// Hooks run around one change of a component on one host. Either may be
// nil.
type Hooks struct {
	// Once runs before the first change of the component in a run that
	// touches one already running (etcd: a healthy quorum, then a
	// snapshot). Its failure fails the change and nothing is touched.
	Once func(ctx context.Context, env *Env, ch plan.Change) error
	// Around wraps the change: it calls do, and may act before and after
	// (the kubelet: drain, uncordon, node labels and taints; etcd: wait for
	// the quorum).
	Around func(ctx context.Context, env *Env, ch plan.Change, do func() error) error
}

// Env is what hooks may use of the run: the mode, the spec, what the hosts
// reported, the connected hosts and the cluster-wide operations the
// executor provides.
type Env struct {
	Mode      plan.Mode
	Cluster   *spec.Cluster
	Installed map[string]Installed
	Host      func(name string) (Host, bool)
	// EtcdQuorum waits until every etcd member answers with a leader.
	EtcdQuorum func(ctx context.Context) error
	// EtcdSnapshot saves a snapshot taken through host, named after the
	// version it was taken from.
	EtcdSnapshot func(ctx context.Context, host, fromVersion string) error
	Logf         func(format string, args ...any)
	// Desired is what a change makes of its component (apply mode; nil or
	// not found otherwise), by the change's address.
	Desired func(address string) (Desired, bool)
}

// ControlPlane returns a connected host with an API server, through which
// node-level API calls are made with its admin kubeconfig.
func (e *Env) ControlPlane() (Host, error) {
	for _, cp := range e.Cluster.HostsRunning(bundle.KubeAPIServer) {
		if h, ok := e.Host(cp.Name); ok {
			return h, nil
		}
	}
	return nil, fmt.Errorf("no control-plane host is connected")
}

// running reports whether the change touches an instance that already runs
// (an upgrade, update, rollback or removal, not a first install).
func running(ch plan.Change) bool { return ch.Action != plan.Create }

// Registry lists every component in rollout order, the agent first.
func Registry() []Spec {
	onAgent := []string{AgentComponent}
	rolling := func(after ...string) func(int) plan.Rule {
		return func(int) plan.Rule {
			return plan.Rule{After: after, AfterOnHost: onAgent, Rolling: true, BatchSize: 1}
		}
	}
	node := func(batch int) plan.Rule { return plan.Rule{AfterOnHost: onAgent, Rolling: true, BatchSize: batch} }
	controlPlane := []string{bundle.KubeAPIServer, bundle.KubeControllerManager, bundle.KubeScheduler}
	addon := func(int) plan.Rule {
		return plan.Rule{After: append(slices.Clone(controlPlane), bundle.Containerd, bundle.CNI, bundle.Kubelet, bundle.KubeProxy), AfterOnHost: onAgent}
	}
	return []Spec{
		{Name: AgentComponent, Rule: func(int) plan.Rule { return plan.Rule{} }},
		{Name: bundle.Etcd, Render: etcd, Rule: rolling(), KeptData: []string{EtcdDataDir},
			Hooks: Hooks{Once: etcdBeforeFirst, Around: etcdAround}},
		{Name: bundle.KubeAPIServer, Render: apiServer, Rule: rolling(bundle.Etcd),
			Hooks: Hooks{Once: apiServerBeforeFirst, Around: apiServerAround}}, // security.go: Secrets rewritten on key changes
		{Name: bundle.KubeControllerManager, Render: controllerManager, Rule: rolling(bundle.KubeAPIServer)},
		{Name: bundle.KubeScheduler, Render: scheduler, Rule: rolling(bundle.KubeAPIServer)},
		{Name: bundle.Containerd, Render: containerd, Rule: node, KeptData: []string{ContainerdRoot}},
		{Name: bundle.CNI, Render: cni, Rule: node, RemoveTools: []string{"iptables", "ip"}},
		{Name: bundle.Kubelet, Render: kubelet, RemoveTools: []string{"iptables"}, Hooks: Hooks{Around: kubeletAround},
			Rule: func(batch int) plan.Rule {
				return plan.Rule{After: controlPlane, AfterOnHost: []string{AgentComponent, bundle.Containerd, bundle.CNI},
					Rolling: true, BatchSize: batch, RemoveAfterOnHost: []string{bundle.KubeProxy}}
			}},
		// kube-proxy needs the API server, not the kubelet: the two start
		// side by side on a host.
		{Name: bundle.KubeProxy, Render: kubeProxy, RemoveTools: []string{"iptables"},
			Rule: func(batch int) plan.Rule {
				return plan.Rule{After: controlPlane, AfterOnHost: onAgent, Rolling: true, BatchSize: batch}
			}},
		// Add-ons go once the control plane and every node are done: their
		// images are imported by containerd, their pods need kubelets.
		{Name: bundle.CoreDNS, Render: coreDNS, Hosts: addonHosts(bundle.CoreDNS), Hooks: Hooks{Around: addonAround}, Rule: addon},
		{Name: bundle.MetricsServer, Render: metricsServer, Hosts: addonHosts(bundle.MetricsServer), Hooks: Hooks{Around: addonAround}, Rule: addon},
	}
}

// Lookup returns the registry entry of a component.
func Lookup(name string) (Spec, bool) {
	for _, s := range Registry() {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// Order is how component changes are sequenced: the Kubernetes version-skew
// order for upgrades (etcd → kube-apiserver → controller-manager and
// scheduler → kubelet and kube-proxy), node components free to start while
// the control plane comes up, and every component on a host after that
// host's agent. Components this version does not know (a newer clusterctl
// installed them) are removed before the agent of their host.
func Order(workerBatch int, extra ...string) plan.Order {
	o := plan.Order{}
	for _, s := range Registry() {
		o[s.Name] = s.Rule(workerBatch)
	}
	for _, n := range extra {
		if _, ok := o[n]; !ok {
			o[n] = plan.Rule{AfterOnHost: []string{AgentComponent}}
		}
	}
	return o
}

// Names lists every component in rollout order, the agent first.
func Names() []string {
	var out []string
	for _, s := range Registry() {
		out = append(out, s.Name)
	}
	return out
}

// KeptData lists the data folders destroy -keep-data keeps on a host with
// these components.
func KeptData(components []string) []string {
	var out []string
	for _, s := range Registry() {
		if slices.Contains(components, s.Name) {
			out = append(out, s.KeptData...)
		}
	}
	return out
}

// RemoveTools lists, for each tool, the components whose removal needs it.
func RemoveTools(components []string) map[string][]string {
	need := map[string][]string{}
	for _, c := range components {
		if s, ok := Lookup(c); ok {
			for _, t := range s.RemoveTools {
				need[t] = append(need[t], c)
			}
		}
	}
	return need
}

// etcdBeforeFirst: before the first member of a running cluster changes,
// the cluster must be healthy, and a snapshot is saved.
func etcdBeforeFirst(ctx context.Context, env *Env, ch plan.Change) error {
	if !running(ch) || ch.Action == plan.Delete {
		return nil
	}
	if err := env.EtcdQuorum(ctx); err != nil {
		return fmt.Errorf("etcd is not healthy before the change, nothing was touched: %w", err)
	}
	from := env.Installed[ch.Host].Components[ch.Name].Version
	return env.EtcdSnapshot(ctx, ch.Host, from)
}

// etcdAround: the next member goes only when every member is back and the
// cluster has its quorum.
func etcdAround(ctx context.Context, env *Env, ch plan.Change, do func() error) error {
	if err := do(); err != nil {
		return err
	}
	if !running(ch) || ch.Action == plan.Delete {
		return nil
	}
	if err := env.EtcdQuorum(ctx); err != nil {
		return fmt.Errorf("etcd on %s: the cluster did not regain quorum after the change: %w", ch.Host, err)
	}
	return nil
}

// kubeletAround: with upgrade.drain, a node's pods move away before its
// kubelet changes, and it takes pods again once the kubelet passed its gate
// (the node is Ready on the new version) or was rolled back. Once the
// kubelet runs, the node gets the labels and taints only an administrator
// may set. A kubelet removed by apply (its host left the spec) is drained
// first and its Node deleted after; a destroy removes the whole cluster and
// does neither.
func kubeletAround(ctx context.Context, env *Env, ch plan.Change, do func() error) error {
	up := env.Cluster.Upgrade()
	leaving := ch.Action == plan.Delete && env.Mode == plan.ModeApply
	drain := leaving || up.Drain && running(ch) && ch.Action != plan.Delete && env.Mode != plan.ModeDestroy
	var cp Host
	if drain || leaving || ch.Action != plan.Delete {
		var err error
		if cp, err = env.ControlPlane(); err != nil {
			return fmt.Errorf("node %s: %w", ch.Host, err)
		}
	}
	if drain {
		env.Logf("  %s: draining (timeout %s)", ch.Host, up.DrainTimeout)
		o := DrainOptions{Timeout: up.DrainTimeout, Force: up.DrainForce, DeleteEmptyDirData: up.DrainDeleteEmptyDirData}
		if err := DrainNode(ctx, cp, ch.Host, o); err != nil {
			// The kubelet is left as it is: nothing of this change was made.
			return fmt.Errorf("%s on %s not changed: %w", ch.Name, ch.Host, err)
		}
	}
	err := do()
	switch {
	case leaving:
		if err != nil {
			return err
		}
		return DeleteNode(ctx, cp, ch.Host)
	case ch.Action == plan.Delete:
		return err
	}
	var ge *GateError
	if drain && (err == nil || errors.As(err, &ge) && ge.RollbackErr == nil) {
		err = errors.Join(err, UncordonNode(ctx, cp, ch.Host))
	}
	if err != nil {
		return err
	}
	h, ok := env.Cluster.Host(ch.Host)
	if !ok {
		return fmt.Errorf("node %s is not in the spec", ch.Host)
	}
	return SyncNode(ctx, cp, ch.Host, DesiredNodeMeta(h))
}

// HostFiles are the host paths the agent's removal clears.
func HostFiles(keepData bool) []string {
	fs := []string{"/opt/clusterctl", ConfigRoot, pki.HostPKIDir, EtcdTLSDir, pki.HostKubeDir + "/*.conf", LogDir, RunDir}
	if !keepData {
		fs = append(fs, SnapshotDir+"/etcd-<cluster>-*.db")
	}
	return fs
}

// Teardown is one host's part of a destroy: a delete of every component
// installed.json records or the agent runs, and of the agent (with
// clusterctl's files) when anything of clusterctl is there.
func Teardown(host string, inst Installed, p HostProbe, keepData bool) []plan.Change {
	names := inst.Names()
	for _, n := range p.Running {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if (len(names) > 0 || p.AgentBinary || len(p.Leftovers) > 0) && !slices.Contains(names, AgentComponent) {
		names = append(names, AgentComponent)
	}
	var out []plan.Change
	for _, n := range names {
		ch := plan.Change{Address: plan.Address(Kind, n, host), Kind: Kind, Name: n, Host: host,
			Action: plan.Delete, Before: inst.Components[n].Version}
		if ch.Before != "" {
			ch.Attrs = append(ch.Attrs, plan.AttrChange{Name: "version", Action: plan.Delete, Before: ch.Before})
		}
		if n == AgentComponent {
			ch.Attrs = append(ch.Attrs, plan.AttrChange{Name: "files", Action: plan.Delete,
				Before: strings.Join(HostFiles(keepData), ", ")})
			if kept := KeptData(names); keepData && len(kept) > 0 {
				ch.Attrs = append(ch.Attrs, plan.AttrChange{Name: plan.AttrKept, Action: plan.NoOp, Before: strings.Join(kept, ", ")})
			}
		}
		out = append(out, ch)
	}
	return out
}

// Apply makes a component on a host match d: the agent's binary, or a
// component's new generation behind its gate (Install).
func (in *Installer) Apply(ctx context.Context, h Host, d Desired, current *InstalledComponent) error {
	if d.Component == AgentComponent {
		return in.InstallAgent(ctx, h, d)
	}
	return in.Install(ctx, h, d, current)
}

// Delete removes a component and what it left on the host (Uninstall);
// the agent goes with all of clusterctl's files (UninstallHost), keeping
// the data folders in kept. Components are stopped through the agent:
// startAgent, when set, starts it first (it adopts what runs) where it did
// not answer.
func (in *Installer) Delete(ctx context.Context, h Host, component string, o UninstallOptions, kept []string, startAgent func() error) error {
	if component == AgentComponent {
		return in.UninstallHost(ctx, h, o, kept)
	}
	if startAgent != nil {
		if err := startAgent(); err != nil {
			return err
		}
	}
	return in.Uninstall(ctx, h, component, o)
}

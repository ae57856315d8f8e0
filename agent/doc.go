// Package agent is clusterctl's on-host supervisor ("clusterctl agent").
//
// It runs the components of each host (etcd, kube-apiserver, containerd,
// kubelet, ...) from generation folders written by apply:
//
//	/etc/clusterctl/<component>/<generation>/unit.json   what to run (Unit)
//	/etc/clusterctl/<component>/current -> <generation>  the active generation
//
// Each component runs in its own session and process group, writes straight
// into /var/log/clusterctl/<component>.log, and is recorded in
// /run/clusterctl/<component>.pid so that a restarted or upgraded agent adopts
// it instead of restarting it. Children never depend on the agent staying
// alive. The agent restarts a component that exits (exponential backoff),
// probes its health, rotates its log, and answers a JSON-lines control socket
// (/run/clusterctl/agent.sock), reached from the workstation through
// "clusterctl agent call" over SSH and by a person on the host with
// "clusterctl agent ctl".
//
// docs/agent.md is the contract with apply.
package agent

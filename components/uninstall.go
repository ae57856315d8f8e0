package components

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/podnet"
)

// CNIBridge is the Linux bridge the CNI network list names (cni.go): the
// pods' gateway, deleted when the pod network is removed.
const CNIBridge = "cni0"

// Host-level paths clusterctl owns besides the component folders.
const (
	// RunDir is the agent's socket, pid files and lock (agent.DefaultPaths).
	RunDir = "/run/clusterctl"
	// SnapshotDir keeps etcd snapshots taken on the host before upgrades,
	// named etcd-<cluster>-<version>-<time>.db.
	SnapshotDir = "/var/lib/clusterctl/snapshots"
	// LabMarker marks a lab host; `clusterctl lab` wrote it, so destroy
	// leaves it.
	LabMarker = "lab-host.json"
	// KeptDataFile lists, on a host destroyed with KeepData, the data
	// folders that were kept, so that a later destroy without it removes
	// them too.
	KeptDataFile = ConfigRoot + "/kept-data"
)

// UninstallOptions tune what destroy removes.
type UninstallOptions struct {
	// KeepData keeps etcd's data, containerd's images and the etcd
	// snapshots on the hosts.
	KeepData bool
}

// Uninstall stops a component through the agent and removes its
// generations and record (Remove), then what it leaves behind when it
// stops: the kubelet's pods, volume mounts and folder, kube-proxy's and the
// kubelet's iptables chains, the pod network's routes, chains and bridge,
// containerd's state and etcd's data. The agent must be running.
func (in *Installer) Uninstall(ctx context.Context, h Host, component string, o UninstallOptions) error {
	if err := in.Remove(ctx, h, component); err != nil {
		return err
	}
	script := CleanupScript(component, o)
	if script == "" {
		return nil
	}
	if out, err := h.Run(ctx, script); err != nil {
		return fmt.Errorf("%s on %s: remove what it left on the host: %w%s", component, h.Name(), err, outputSuffix(out))
	}
	return nil
}

func outputSuffix(out []byte) string {
	if s := strings.TrimSpace(string(out)); s != "" {
		return "\n" + indent(s, "    ")
	}
	return ""
}

// HostProbe is what clusterctl has on a host besides installed.json: what
// the agent runs, and which of clusterctl's own folders hold anything.
type HostProbe struct {
	AgentBinary bool     // /opt/clusterctl/bin/clusterctl exists
	AgentUp     bool     // the agent answered
	Running     []string // components the agent supervises
	Leftovers   []string // clusterctl's folders and files that are not empty
}

// ProbeHost asks the agent what it runs and lists clusterctl's own paths
// that still hold something (a lab host's marker does not count, nor,
// when KeepData is set, the list of kept folders: a second destroy with it
// finds nothing to do).
func ProbeHost(ctx context.Context, h Host, o UninstallOptions) (HostProbe, error) {
	var p HostProbe
	out, err := h.Run(ctx, shellLib+"if [ -x "+AgentBinary+" ]; then echo binary; fi\n"+leftoversScript(o))
	if err != nil {
		return p, fmt.Errorf("%s: look for clusterctl's files: %w", h.Name(), err)
	}
	rest, found := strings.CutPrefix(string(out), "binary\n")
	p.AgentBinary, out = found, []byte(rest)
	if found {
		if resp, err := (AgentClient{h}).Status(ctx); err == nil {
			p.AgentUp = true
			for _, c := range resp.Components {
				p.Running = append(p.Running, c.Name)
			}
		}
	}
	p.Leftovers = strings.Fields(string(out))
	return p, nil
}

// ownedPaths are clusterctl's own host paths: whatever they hold, clusterctl
// put there. Component data folders (/var/lib/etcd, ...) are not among
// them: they are removed with their component, whose record says it is
// clusterctl's. Nor are the snapshots: on lab hosts their folder is the
// workstation's, shared by the labs of several clusters.
func ownedPaths() []string {
	return []string{"/opt/clusterctl", ConfigRoot, pki.HostPKIDir, EtcdTLSDir, LogDir, RunDir, agent.DefaultSystemdUnitPath}
}

// configKeep are the entries of ConfigRoot that are not clusterctl's
// installation: the lab marker, and the list of kept folders while
// KeepData is asked for again.
func configKeep(o UninstallOptions) []string {
	if o.KeepData {
		return []string{LabMarker, path.Base(KeptDataFile)}
	}
	return []string{LabMarker}
}

// leftoversScript prints each owned path that exists and is not empty.
func leftoversScript(o UninstallOptions) string {
	var b strings.Builder
	for _, p := range ownedPaths() {
		var keep []string
		if p == ConfigRoot {
			keep = configKeep(o)
		}
		fmt.Fprintf(&b, "if holds %s; then echo %s; fi\n", shellJoin(append([]string{p}, keep...)...), shellQuote(p))
	}
	return b.String()
}

// StartAgent starts the host's agent from the installed binary (it adopts
// running components), so that components can be stopped through it.
func StartAgent(ctx context.Context, h Host) error {
	if err := (AgentClient{h}).StartAgent(ctx); err != nil {
		return fmt.Errorf("start the agent to stop the components through it: %w", err)
	}
	return nil
}

// UninstallHost is the last step on a host: it checks that the agent
// supervises nothing any more, stops it (and removes its systemd unit),
// and removes clusterctl's files: /opt/clusterctl (binaries), /etc/clusterctl
// (a lab host keeps its marker), /etc/kubernetes/pki and the kubeconfigs
// /etc/kubernetes/*.conf, /var/log/clusterctl, /run/clusterctl and, unless
// KeepData, the cluster's snapshots in /var/lib/clusterctl/snapshots.
// Folders that are mount points are emptied, not removed. kept lists the
// data folders KeepData keeps on this host (KeptData).
func (in *Installer) UninstallHost(ctx context.Context, h Host, o UninstallOptions, kept []string) error {
	p, err := ProbeHost(ctx, h, o)
	if err != nil {
		return err
	}
	if len(p.Running) > 0 {
		return fmt.Errorf("%s: the agent still supervises %s; not stopping it", h.Name(), strings.Join(p.Running, ", "))
	}
	if p.AgentUp {
		if err := (AgentClient{h}).StopAgent(ctx); err != nil {
			return fmt.Errorf("stop the agent: %w", err)
		}
	}
	if out, err := h.Run(ctx, HostCleanupScript(o, in.Cluster, kept)); err != nil {
		return fmt.Errorf("%s: remove the agent and clusterctl's files: %w%s", h.Name(), err, outputSuffix(out))
	}
	p, err = ProbeHost(ctx, h, o)
	if err != nil {
		return err
	}
	if len(p.Leftovers) > 0 || p.AgentBinary {
		return fmt.Errorf("%s: still present after the cleanup: %s", h.Name(), strings.Join(p.Leftovers, ", "))
	}
	return nil
}

// shellLib holds the shell functions the cleanup scripts use: POSIX sh and
// tools every Linux host has (awk, find, sort, umount, readlink, timeout).
// A script sets rc through fail and ends with `exit $rc`, so every step is
// tried and every problem reported.
const shellLib = `rc=0
fail() { echo "$*" >&2; rc=1; }
# is_mount DIR: DIR is a mount point.
is_mount() { awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; }
# unmount_under DIR: unmount everything mounted below DIR (not DIR), deepest first.
unmount_under() {
	awk -v p="$1/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
		m=$(printf '%b' "$m")
		umount "$m" 2>/dev/null || umount -l "$m" || echo "cannot unmount $m" >&2
	done
	if awk -v p="$1/" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then fail "mounts remain below $1"; fi
}
# kept NAME KEEP...: NAME is one of the KEEP names.
kept() { local n=$1 k; shift; for k in "$@"; do [ "$n" = "$k" ] && return 0; done; return 1; }
# holds PATH [KEEP...]: PATH exists and is a file, or a folder with an entry not named KEEP.
holds() {
	local d=$1 e; shift
	[ -e "$d" ] || [ -L "$d" ] || return 1
	[ -d "$d" ] && [ ! -L "$d" ] || return 0
	for e in "$d"/* "$d"/.[!.]* "$d"/..?*; do
		[ -e "$e" ] || [ -L "$e" ] || continue
		kept "${e##*/}" "$@" || return 0
	done
	return 1
}
# clear_dir PATH [KEEP...]: remove PATH and everything in it, unmounting
# what is mounted below it first. A mount point, or a folder holding a KEEP
# entry, is emptied (but for KEEP) and stays.
clear_dir() {
	local d=$1 e; shift
	[ -e "$d" ] || [ -L "$d" ] || return 0
	if [ -L "$d" ] || [ ! -d "$d" ]; then rm -f -- "$d" || fail "cannot remove $d"; return 0; fi
	unmount_under "$d"
	for e in "$d"/* "$d"/.[!.]* "$d"/..?*; do
		[ -e "$e" ] || [ -L "$e" ] || continue
		kept "${e##*/}" "$@" && continue
		rm -rf --one-file-system -- "$e" || fail "cannot remove $e"
	done
	if is_mount "$d" || holds "$d"; then return 0; fi
	rmdir -- "$d" || fail "cannot remove $d"
}
# last_match GLOB: the last existing path the glob matches (empty if none).
last_match() { r=; for f in $1; do [ -e "$f" ] && r=$f; done; echo "$r"; }
# procs PATTERN: pids whose executable matches PATTERN (a shell pattern).
procs() {
	for p in /proc/[0-9]*; do
		case $(readlink "$p/exe" 2>/dev/null) in $1) echo "${p#/proc/}" ;; esac
	done
}
# kill_procs PATTERN: SIGKILL those processes and wait (5 s at most) until they are gone.
kill_procs() {
	for p in $(procs "$1"); do kill -9 "$p" 2>/dev/null; done
	i=0
	while [ -n "$(procs "$1")" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	[ -z "$(procs "$1")" ] || fail "still running after SIGKILL: $(procs "$1" | tr '\n' ' ')($1)"
}
# remove_netns: the pod network namespaces containerd made (/run/netns/cni-*).
remove_netns() {
	for n in /run/netns/cni-*; do
		[ -e "$n" ] || continue
		umount "$n" 2>/dev/null || umount -l "$n" 2>/dev/null
		rm -f -- "$n" || fail "cannot remove $n"
	done
}
# sweep_chains PREFIX...: delete the iptables chains whose names start with
# a PREFIX, and every rule of another chain that jumps to them, in every
# table of every iptables variant the host has (one iptables-restore per
# variant: all or nothing).
sweep_chains() {
	for ipt in iptables ip6tables iptables-legacy ip6tables-legacy iptables-nft ip6tables-nft; do
		command -v "$ipt-save" >/dev/null 2>&1 && command -v "$ipt-restore" >/dev/null 2>&1 || continue
		rules=$("$ipt-save" 2>/dev/null) || continue
		script=$(printf '%s\n' "$rules" | awk -v prefixes="$*" "$chain_sweep")
		[ -n "$script" ] || continue
		printf '%s\n' "$script" | "$ipt-restore" -w 5 --noflush || fail "$ipt-restore could not remove the chains $*"
	done
}
`

// chainSweepAWK turns `iptables-save` output into `iptables-restore
// --noflush` input that deletes the chains whose names start with one of
// the space-separated prefixes: first the rules of other chains that jump
// (-j) or go (-g) to them, then their rules, then the chains.
const chainSweepAWK = `BEGIN { n = split(prefixes, p, " ") }
function ours(c,   i) { for (i = 1; i <= n; i++) if (index(c, p[i]) == 1) return 1; return 0 }
/^\*/ { table = substr($0, 2); nc = 0; nd = 0; next }
/^:/ { c = substr($1, 2); if (ours(c)) chains[++nc] = c; next }
/^-A / {
	if (!ours($2)) for (i = 3; i < NF; i++) if (($i == "-j" || $i == "-g") && ours($(i + 1))) { dels[++nd] = "-D " substr($0, 4); break }
	next
}
/^COMMIT/ {
	if (nc + nd == 0) next
	print "*" table
	for (i = 1; i <= nd; i++) print dels[i]
	for (i = 1; i <= nc; i++) print "-F " chains[i]
	for (i = 1; i <= nc; i++) print "-X " chains[i]
	print "COMMIT"
}
`

// script joins the library and a body into one script that exits with rc.
func script(body ...string) string {
	return shellLib + "chain_sweep=" + shellQuote(chainSweepAWK) + "\n" + strings.Join(body, "\n") + "\nexit $rc\n"
}

// Patterns of the bundled programs, whatever their version.
const (
	shimPattern  = PkgRoot + "/containerd/*/containerd-shim-runc-v2*" // "*": " (deleted)" after an upgrade
	ctrGlob      = PkgRoot + "/containerd/*/ctr"
	runcGlob     = PkgRoot + "/runc/*/runc"
	kubeProxyBin = PkgRoot + "/kube-proxy/*/kube-proxy"
	runcRoot     = ContainerdState + "/runc/k8s.io" // runc's state of the CRI's containers
)

// CleanupScript is the shell script that removes what a stopped component
// left on its host; "" when there is nothing beyond its configuration.
func CleanupScript(component string, o UninstallOptions) string {
	switch component {
	case bundle.Kubelet:
		return script(killPods, "remove_netns", "clear_dir "+KubeletDir, "clear_dir /var/log/pods", "clear_dir /var/log/containers",
			"sweep_chains KUBE-")
	case bundle.KubeProxy:
		return script(
			`kp=$(last_match '`+kubeProxyBin+`')`,
			`if [ -n "$kp" ]; then timeout 60 "$kp" --cleanup >/dev/null 2>&1 || echo "kube-proxy --cleanup failed; removing its chains directly" >&2; fi`,
			"sweep_chains KUBE-")
	case bundle.CNI:
		proto := strconv.Itoa(podnet.RouteProtocol)
		return script(
			`if [ -n "$(ip -4 route show proto `+proto+`)" ]; then ip -4 route flush proto `+proto+` || fail "cannot delete the pod routes (proto `+proto+`)"; fi`,
			"sweep_chains "+strings.Join(cniChainPrefixes, " "),
			`if ip link show `+CNIBridge+` >/dev/null 2>&1; then ip link delete `+CNIBridge+` || fail "cannot delete the bridge `+CNIBridge+`"; fi`,
			"rm -f -- "+shellJoin(CNIConfDir+"/"+CNIConfName, CNIConfDir+"/."+CNIConfName+".tmp"),
			"rmdir "+CNIConfDir+" /etc/cni 2>/dev/null",
			"clear_dir /var/lib/cni/networks/"+cniNetworkName,
			"rm -f /var/lib/cni/results/"+cniNetworkName+"-* /var/lib/cni/results/cni-loopback-*",
			"rmdir /var/lib/cni/results /var/lib/cni/networks /var/lib/cni 2>/dev/null")
	case bundle.Containerd:
		body := []string{`kill_procs '` + shimPattern + `'`, "remove_netns", "rmdir /run/netns 2>/dev/null",
			"clear_dir " + ContainerdState, "rm -f /run/nri/nri.sock", "rmdir /run/nri 2>/dev/null", // containerd's NRI socket
			"unmount_under " + ContainerdRoot}
		if !o.KeepData {
			body = append(body, "clear_dir "+ContainerdRoot)
		}
		return script(body...)
	case bundle.Etcd:
		if o.KeepData {
			return ""
		}
		return script("clear_dir "+EtcdDataDir, "clear_dir "+EtcdTLSDir)
	}
	return ""
}

// cniChainPrefixes are the iptables chains of the pod network: the
// keeper's (podnet.ChainMasquerade, podnet.ChainForward) and those the
// portmap plugin makes for hostPorts (pods are killed, not torn down
// through CNI, so the plugin never removes them itself).
var cniChainPrefixes = []string{"CLUSTERCTL-", "CNI-HOSTPORT-", "CNI-DN-"}

// killPods ends every pod of the stopped kubelet, which containerd keeps
// running in its shims: through containerd (kill every process of each
// task in the CRI's k8s.io namespace, then delete the task, which unmounts
// its root filesystem and ends its shim), then runc directly for whatever
// is left (containerd not running), then any shim that remains.
const killPods = `ctr=$(last_match '` + ctrGlob + `')
if [ -n "$ctr" ] && [ -S ` + ContainerdSocket + ` ]; then
	c="timeout 30 $ctr --address ` + ContainerdSocket + ` --namespace k8s.io"
	for t in $($c tasks ls -q 2>/dev/null); do $c tasks kill --all --signal SIGKILL "$t" >/dev/null 2>&1; done
	for t in $($c tasks ls -q 2>/dev/null); do $c tasks delete --force "$t" >/dev/null 2>&1; done
fi
runc=$(last_match '` + runcGlob + `')
if [ -n "$runc" ] && [ -d ` + runcRoot + ` ]; then
	for id in $("$runc" --root ` + runcRoot + ` list -q 2>/dev/null); do "$runc" --root ` + runcRoot + ` delete --force "$id" >/dev/null 2>&1; done
	left=$("$runc" --root ` + runcRoot + ` list -q 2>/dev/null | tr '\n' ' ')
	[ -z "$left" ] || fail "containers still exist: $left"
fi
kill_procs '` + shimPattern + `'`

// HostCleanupScript stops the agent (disabling and removing its systemd
// unit where it has one) and removes clusterctl's files, and the cluster's
// etcd snapshots. With KeepData it keeps the snapshots and writes kept
// (data folders of the host's components) to KeptDataFile; without, it
// also removes the folders an earlier KeepData destroy kept.
func HostCleanupScript(o UninstallOptions, cluster string, kept []string) string {
	unit := agent.DefaultSystemdUnitPath
	body := []string{
		`if [ -e ` + unit + ` ]; then`,
		`	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then`,
		`		systemctl disable --now ` + agent.SystemdUnitName + ` >/dev/null 2>&1 || fail "cannot stop and disable ` + agent.SystemdUnitName + `"`,
		`		rm -f ` + unit + ` && systemctl daemon-reload`,
		`	else`,
		`		rm -f ` + unit,
		`	fi`,
		`fi`,
		// The agent was stopped through its client; one that did not
		// answer (hung, or from an interrupted run) is killed.
		`kill_procs '` + AgentBinary + `*'`,
		"clear_dir " + RunDir,
		"clear_dir /opt/clusterctl",
		"clear_dir " + LogDir,
	}
	// This cluster's snapshots only: on lab hosts the folder is the
	// workstation's, shared with other labs.
	snapshots := SnapshotDir + "/etcd-" + shellQuote(cluster) + "-*.db"
	if o.KeepData {
		if len(kept) > 0 {
			body = append(body, "mkdir -p "+ConfigRoot+" && printf '%s\\n' "+shellJoin(kept...)+" > "+KeptDataFile+` || fail "cannot write `+KeptDataFile+`"`)
		}
	} else {
		body = append(body,
			`if [ -f `+KeptDataFile+` ]; then`,
			`	while read -r kd; do`,
			`		case $kd in `+EtcdDataDir+"|"+ContainerdRoot+`) clear_dir "$kd" ;; esac`,
			`	done < `+KeptDataFile,
			`fi`,
			"rm -f -- "+snapshots,
			"rmdir "+SnapshotDir+" "+path.Dir(SnapshotDir)+" 2>/dev/null")
	}
	body = append(body,
		"clear_dir "+pki.HostPKIDir,
		"clear_dir "+EtcdTLSDir,
		"rm -f "+pki.HostKubeDir+"/*.conf",
		"rmdir "+pki.HostKubeDir+" 2>/dev/null",
		// Last: installed.json goes with it, so an interrupted destroy still
		// finds the host's agent to remove next time.
		"clear_dir "+shellJoin(append([]string{ConfigRoot}, configKeep(o)...)...),
	)
	return script(body...)
}

package provision

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Facts is what a host is, gathered in one round trip.
type Facts struct {
	Hostname      string
	OS            string // os-release ID: debian, ubuntu, rhel, ...
	OSVersion     string // os-release VERSION_ID
	Machine       string // uname -m
	Arch          string // Go's name for Machine: amd64, arm64, ...
	Kernel        string // uname -r
	CgroupVersion int    // 1 or 2; 0 when /sys/fs/cgroup is not mounted
	SystemdPID1   bool   // systemd is PID 1 (else the agent runs detached)
	CPUs          int
	MemoryBytes   int64
	SwapOn        bool
	// CapEff is the effective capability set of commands run on the host
	// (root's, with sudo).
	CapEff uint64
	// Tools maps the tools looked for (iptables, ip, mount, ...) to their
	// paths; missing tools are absent.
	Tools map[string]string
	// Installed is /etc/clusterctl/installed.json as it is; nil if absent.
	Installed []byte
	// LabHost is /etc/clusterctl/lab-host.json, which `clusterctl lab`
	// writes inside each lab host; nil on real hosts.
	LabHost []byte
	// InotifyInstances and InotifyWatches are the kernel's per-user inotify
	// limits (fs.inotify.max_user_instances, max_user_watches); 0 when
	// unknown. The kubelet and containerd cannot start without instances.
	InotifyInstances, InotifyWatches int
}

// Linux capability bits the components care about.
const (
	CapNetAdmin    = 12
	CapSysAdmin    = 21
	CapSysResource = 24
)

// HasCap reports whether the effective set holds capability bit n.
func (f Facts) HasCap(n int) bool { return n >= 0 && n < 64 && f.CapEff&(1<<n) != 0 }

// HasTool reports whether the host has the named tool in PATH.
func (f Facts) HasTool(name string) bool { _, ok := f.Tools[name]; return ok }

// factTools are the programs Facts looks for.
const factTools = "iptables ip6tables ip mount umount conntrack sha256sum tar systemctl nsenter modprobe sysctl ipset socat"

// factsScript prints key=value lines. root prefixes the /etc/clusterctl
// paths (tests point it at a scratch folder); it is "" on real hosts.
func factsScript(root string) string {
	return `r=` + Quote(root) + `
export LC_ALL=C
kv() { printf '%s=%s\n' "$1" "$2"; }
kv hostname "$(cat /proc/sys/kernel/hostname 2>/dev/null || hostname)"
if [ -r /etc/os-release ]; then
  kv os "$(sed -n 's/^ID=//p' /etc/os-release | tr -d '"')"
  kv os_version "$(sed -n 's/^VERSION_ID=//p' /etc/os-release | tr -d '"')"
fi
kv machine "$(uname -m)"
kv kernel "$(uname -r)"
cg=$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)
kv cgroup_fs "$cg"
kv pid1 "$(cat /proc/1/comm 2>/dev/null)"
kv cpus "$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
kv mem_kb "$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\) kB$/\1/p' /proc/meminfo)"
kv swaps "$(($(wc -l < /proc/swaps) - 1))"
kv capeff "$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
kv inotify_instances "$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null)"
kv inotify_watches "$(cat /proc/sys/fs/inotify/max_user_watches 2>/dev/null)"
# Look for tools where the agent's components will (agent/process.go's
# PATH), not only on the login user's PATH: without sudo a non-root user's
# PATH often lacks /usr/sbin, where iptables lives.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
for t in ` + factTools + `; do
  p=$(command -v "$t" 2>/dev/null) && kv "tool.$t" "$p"
done
for f in installed lab-host; do
  if [ -f "$r/etc/clusterctl/$f.json" ]; then
    kv "$f.json" "$(base64 < "$r/etc/clusterctl/$f.json" | tr -d '\n')"
  fi
done
echo end=1
`
}

// Facts gathers the host's facts with one command (as root when sudo is
// configured, so capabilities are those the components will get).
func (c *Client) Facts(ctx context.Context) (Facts, error) {
	return c.facts(ctx, "")
}

func (c *Client) facts(ctx context.Context, root string) (Facts, error) {
	res, err := c.run(ctx, Cmd{Line: factsScript(root)}, true)
	if err != nil {
		return Facts{}, c.fail("facts", err)
	}
	f, err := parseFacts(res.Stdout)
	if err != nil {
		return Facts{}, c.fail("facts", err)
	}
	return f, nil
}

func parseFacts(out []byte) (Facts, error) {
	f := Facts{Tools: map[string]string{}}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		seen[k] = true
		var err error
		switch {
		case k == "hostname":
			f.Hostname = v
		case k == "os":
			f.OS = v
		case k == "os_version":
			f.OSVersion = v
		case k == "machine":
			f.Machine, f.Arch = v, goArch(v)
		case k == "kernel":
			f.Kernel = v
		case k == "cgroup_fs":
			switch v {
			case "cgroup2fs":
				f.CgroupVersion = 2
			case "tmpfs", "cgroupfs":
				f.CgroupVersion = 1
			}
		case k == "pid1":
			f.SystemdPID1 = v == "systemd"
		case k == "cpus":
			f.CPUs, err = strconv.Atoi(v)
		case k == "mem_kb":
			var kb int64
			kb, err = strconv.ParseInt(v, 10, 64)
			f.MemoryBytes = kb * 1024
		case k == "swaps":
			var n int
			n, err = strconv.Atoi(v)
			f.SwapOn = n > 0
		case k == "capeff":
			f.CapEff, err = strconv.ParseUint(v, 16, 64)
		case k == "inotify_instances" && v != "":
			f.InotifyInstances, err = strconv.Atoi(v)
		case k == "inotify_watches" && v != "":
			f.InotifyWatches, err = strconv.Atoi(v)
		case strings.HasPrefix(k, "tool."):
			f.Tools[strings.TrimPrefix(k, "tool.")] = v
		case k == "installed.json":
			f.Installed, err = base64.StdEncoding.DecodeString(v)
		case k == "lab-host.json":
			f.LabHost, err = base64.StdEncoding.DecodeString(v)
		}
		if err != nil {
			return Facts{}, fmt.Errorf("bad value for %s: %q: %w", k, v, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Facts{}, err
	}
	for _, k := range []string{"end", "machine", "kernel", "cpus", "mem_kb", "capeff"} {
		if !seen[k] {
			return Facts{}, fmt.Errorf("incomplete output: no %s", k)
		}
	}
	return f, nil
}

// goArch maps uname -m to Go's (and the release artifacts') arch names.
func goArch(m string) string {
	switch m {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "armv7l", "armv6l":
		return "arm"
	case "ppc64le":
		return "ppc64le"
	case "s390x":
		return "s390x"
	case "riscv64":
		return "riscv64"
	}
	return m
}

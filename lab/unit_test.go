package lab

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/clusterctl/clusterctl/spec"
)

func TestPlanAddresses(t *testing.T) {
	tests := []struct {
		subnet    string
		n, hidden int
		bridge    string
		first     string
		last      string
		hiddenAt  string
		wantErr   string
	}{
		{subnet: "10.200.0.0/24", n: 3, bridge: "10.200.0.1", first: "10.200.0.11", last: "10.200.0.13"},
		{subnet: "10.200.0.77/24", n: 1, bridge: "10.200.0.1", first: "10.200.0.11", last: "10.200.0.11"}, // masked
		{subnet: "10.201.3.0/24", n: 2, hidden: 1, bridge: "10.201.3.1", first: "10.201.3.11", last: "10.201.3.12", hiddenAt: "10.201.3.254"},
		{subnet: "10.0.0.0/16", n: 300, bridge: "10.0.0.1", first: "10.0.0.11", last: "10.0.1.54"},
		{subnet: "10.200.0.0/24", n: 244, bridge: "10.200.0.1", first: "10.200.0.11", last: "10.200.0.254"},
		{subnet: "10.200.0.0/24", n: 245, wantErr: "room for 244 hosts"},
		{subnet: "10.200.0.0/24", n: 243, hidden: 2, wantErr: "room for 244 hosts"},
		{subnet: "10.200.0.0/28", n: 4, bridge: "10.200.0.1", first: "10.200.0.11", last: "10.200.0.14"},
		{subnet: "10.200.0.0/28", n: 5, wantErr: "room for 4 hosts"},
		{subnet: "10.200.0.0/30", n: 1, wantErr: "room for 0 hosts"},
		{subnet: "fd00::/64", n: 1, wantErr: "only IPv4"},
	}
	for _, tt := range tests {
		p, err := planAddresses(netip.MustParsePrefix(tt.subnet), tt.n, tt.hidden)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s with %d hosts: error %v, want %q", tt.subnet, tt.n, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s with %d hosts: %v", tt.subnet, tt.n, err)
			continue
		}
		got := []string{p.bridge.String(), p.hosts[0].String(), p.hosts[len(p.hosts)-1].String()}
		want := []string{tt.bridge, tt.first, tt.last}
		if tt.hidden > 0 {
			got = append(got, p.hidden[0].String())
			want = append(want, tt.hiddenAt)
		}
		if diff := cmp.Diff(want, got); diff != "" || len(p.hosts) != tt.n {
			t.Errorf("%s with %d hosts (-want +got):\n%s", tt.subnet, tt.n, diff)
		}
	}
}

func TestLabIDOfNetns(t *testing.T) {
	for name, want := range map[string]string{
		"lab-1a2b-cp-1":     "1a2b",
		"lab-1a2b-worker-9": "1a2b",
		"lab-1A2B-cp-1":     "",
		"lab-1a2-cp-1":      "",
		"lab-1a2b":          "",
		"other":             "",
	} {
		got, ok := labIDOfNetns(name)
		if got != want || ok != (want != "") {
			t.Errorf("labIDOfNetns(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}

const v1Mountinfo = `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:26 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 30 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 31 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 31 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
35 31 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
36 22 0:32 / /mnt/with\040space rw - tmpfs tmpfs rw
`

type fakeEntry struct {
	name string
	link bool
}

func (e fakeEntry) Name() string { return e.name }
func (e fakeEntry) IsDir() bool  { return !e.link }
func (e fakeEntry) Type() os.FileMode {
	if e.link {
		return os.ModeSymlink
	}
	return os.ModeDir
}
func (e fakeEntry) Info() (os.FileInfo, error) { return nil, nil }

func TestCgroupsFromMountinfo(t *testing.T) {
	mi, err := parseMountinfo(strings.NewReader(v1Mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if mi[len(mi)-1].Mountpoint != "/mnt/with space" {
		t.Errorf("escaped mount point: %q", mi[len(mi)-1].Mountpoint)
	}
	readDir := func(string) ([]os.DirEntry, error) {
		return []os.DirEntry{fakeEntry{"cpu", true}, fakeEntry{"cpu,cpuacct", false}, fakeEntry{"cpuacct", true}, fakeEntry{"memory", false}}, nil
	}
	readlink := func(p string) (string, error) { return "cpu,cpuacct", nil }
	mounts, links, err := cgroupsFromMountinfo(mi, readDir, readlink)
	if err != nil {
		t.Fatal(err)
	}
	wantMounts := []cgroupMount{
		{Target: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", Data: "cpu,cpuacct"},
		{Target: "/sys/fs/cgroup/memory", FSType: "cgroup", Data: "memory"},
		{Target: "/sys/fs/cgroup/systemd", FSType: "cgroup", Data: "xattr,name=systemd"},
		{Target: "/sys/fs/cgroup/unified", FSType: "cgroup2", Data: "nsdelegate"},
	}
	wantLinks := []cgroupLink{{"cpu", "cpu,cpuacct"}, {"cpuacct", "cpu,cpuacct"}}
	if diff := cmp.Diff(wantMounts, mounts); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantLinks, links); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	if got := hostCgroupDirs(mounts, "/lab-1a2b-cp-1"); got[1] != "/sys/fs/cgroup/memory/lab-1a2b-cp-1" {
		t.Errorf("host cgroup dirs: %v", got)
	}

	// cgroup v2 only: one hierarchy at /sys/fs/cgroup, no tmpfs, no links.
	v2, err := parseMountinfo(strings.NewReader("31 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"))
	if err != nil {
		t.Fatal(err)
	}
	mounts, links, err = cgroupsFromMountinfo(v2, readDir, readlink)
	if err != nil || len(mounts) != 1 || mounts[0].Target != cgroupFS || links != nil {
		t.Errorf("v2: %v %v %v", mounts, links, err)
	}

	// A hierarchy mounted from a subfolder (a container's view) is refused.
	sub, _ := parseMountinfo(strings.NewReader("33 31 0:29 /docker/x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"))
	if _, _, err := cgroupsFromMountinfo(sub, readDir, readlink); err == nil || !strings.Contains(err.Error(), "not its root") {
		t.Errorf("subtree mount: %v", err)
	}
}

func TestLabSpec(t *testing.T) {
	s := &State{ID: "1a2b", Dir: "/srv/lab", Hosts: []HostState{
		{Name: "cp-1", Address: "10.200.0.11", Roles: []string{"control-plane", "etcd"}},
		{Name: "worker-1", Address: "10.200.0.12", Roles: []string{"worker"}},
		{Name: "behind-1", Address: "10.200.0.254", Bastion: "cp-1"},
	}}
	b := labSpec(s, time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC))
	want := "# Written by `clusterctl lab up` on 2026-05-04 03:02 UTC; `clusterctl lab down --dir /srv/lab` removes the lab.\n" + `ssh {
  user             = "root"
  identity_files   = ["id_ed25519"]
  known_hosts_file = "known_hosts"
  host_key_policy  = "strict"
}

host "cp-1" {
  address = "10.200.0.11"
  roles   = ["control-plane", "etcd"]
}

host "worker-1" {
  address = "10.200.0.12"
  roles   = ["worker"]
}
`
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("lab.hcl (-want +got):\n%s", diff)
	}
	if f := hclwrite.Format(b); string(f) != string(b) {
		t.Errorf("lab.hcl is not in canonical format")
	}
	if _, diags := hclsyntax.ParseConfig(b, "lab.hcl", hcl.InitialPos); diags.HasErrors() {
		t.Errorf("lab.hcl does not parse: %v", diags)
	}
	// With the example cluster block it is a valid spec.
	cluster, err := os.ReadFile("../examples/lab/cluster.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c, diags := spec.Parse(map[string][]byte{"lab.hcl": b, "cluster.hcl": cluster}, spec.VarInputs{Env: []string{}}); diags.HasErrors() || c == nil {
		t.Errorf("lab.hcl with examples/lab/cluster.hcl is not a valid spec: %v", diags)
	}
}

func TestSSHDConfig(t *testing.T) {
	c := sshdConfig(&HostState{Name: "cp-1", Address: "10.200.0.11"}, "/usr/lib/openssh/sftp-server")
	for _, want := range []string{
		"ListenAddress 10.200.0.11\n",
		"HostKey /etc/ssh/ssh_host_ed25519_key\n",
		"PidFile /run/sshd.pid\n",
		"UsePAM no\n",
		"PermitRootLogin prohibit-password\n",
		"PasswordAuthentication no\n",
		"StrictModes yes\n",
		"Subsystem sftp /usr/lib/openssh/sftp-server\n",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("sshd_config lacks %q", want)
		}
	}
}

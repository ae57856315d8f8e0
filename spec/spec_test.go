package spec

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

const minimal = `
cluster "c" {
  kubernetes_version = "1.36.3"
}
host "n1" {
  address = "192.168.1.10"
  roles   = ["control-plane", "etcd", "worker"]
}
`

func mustParse(t *testing.T, files map[string]string, in VarInputs) *Cluster {
	t.Helper()
	c, diags := parseStrings(files, in)
	if diags.HasErrors() {
		t.Fatalf("unexpected errors: %v", diags)
	}
	return c
}

func parseStrings(files map[string]string, in VarInputs) (*Cluster, hcl.Diagnostics) {
	m := map[string][]byte{}
	for k, v := range files {
		m[k] = []byte(v)
	}
	return Parse(m, in)
}

// firstError returns "FILE:LINE Summary" of the first error.
func firstError(diags hcl.Diagnostics) string {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			if d.Subject == nil {
				return "- " + d.Summary
			}
			return d.Subject.Filename + ":" + strconv.Itoa(d.Subject.Start.Line) + " " + d.Summary
		}
	}
	return ""
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, map[string]string{"c.hcl": minimal}, VarInputs{Env: []string{"HOME=/home/u"}})
	if c.PodCIDR().String() != "10.244.0.0/16" || c.ServiceCIDR().String() != "10.96.0.0/12" || c.ClusterDNS().String() != "10.96.0.10" || c.APIEndpoint() != "" {
		t.Errorf("networks: %s %s %s %q", c.PodCIDR(), c.ServiceCIDR(), c.ClusterDNS(), c.APIEndpoint())
	}
	want := SSH{User: "root", Port: 22, IdentityFiles: []string{}, UseAgent: false, KnownHostsFile: "/home/u/.ssh/known_hosts", HostKeyPolicy: "strict", ConnectTimeout: 10 * time.Second}
	if diff := cmp.Diff(want, c.SSH()); diff != "" {
		t.Errorf("ssh defaults (-want +got):\n%s", diff)
	}
	h, ok := c.Host("n1")
	if !ok || h.Port != 22 || h.User != "root" || h.NodeAddress() != netip.MustParseAddr("192.168.1.10") {
		t.Errorf("host %+v", h)
	}
	rel := c.Release()
	for _, comp := range c.Components() {
		v, _ := rel.Version(comp.Name)
		if comp.Version != v || comp.VersionSet || comp.HostsSet || len(comp.Hosts) != 1 {
			t.Errorf("component %+v, want version %s on n1", comp, v)
		}
		if comp.VersionRange.Start.Line != 3 {
			t.Errorf("component %s: defaulted version should point at kubernetes_version, got %s", comp.Name, comp.VersionRange)
		}
	}
	if c.Files()[0] != "c.hcl" || c.DeclRange().Start.Line != 2 {
		t.Errorf("files %v, decl %s", c.Files(), c.DeclRange())
	}
}

func TestSSHMerge(t *testing.T) {
	files := map[string]string{
		"c.hcl": `
cluster "c" {
  kubernetes_version = "1.37.2"
}
ssh {
  user           = "admin"
  identity_files = ["keys/id", "~/.ssh/id_rsa", "/abs/key"]
  use_agent      = false
  sudo_password_env = "SUDO_PW"
  bastion {
    address = "jump.example.com"
  }
}
host "a" {
  address = "10.0.0.1"
  roles   = ["control-plane", "etcd", "worker"]
}
`,
		"sub/more.hcl": `
host "b" {
  address = "10.0.0.2"
  port    = 2222
  roles   = ["worker"]
  ssh {
    user             = "root"
    known_hosts_file = "kh"
    identity_files   = ["b.key"]
    connect_timeout  = "1m"
    bastion {
      address = "10.9.9.9"
      port    = 2200
    }
  }
}
host "c" {
  address = "10.0.0.3"
  roles   = ["worker"]
  user    = "ops"
  ssh {
    sudo = false
  }
}
`,
	}
	c := mustParse(t, files, VarInputs{Env: []string{"HOME=/home/u", "SSH_AUTH_SOCK=/run/agent"}})
	a, _ := c.Host("a")
	wantA := SSH{
		User: "admin", Port: 22, IdentityFiles: []string{"keys/id", "/home/u/.ssh/id_rsa", "/abs/key"}, UseAgent: false,
		KnownHostsFile: "/home/u/.ssh/known_hosts", HostKeyPolicy: "strict", Sudo: true, SudoPasswordEnv: "SUDO_PW",
		Bastion: Bastion{Address: "jump.example.com", User: "admin", Port: 22}, ConnectTimeout: 10 * time.Second,
	}
	if diff := cmp.Diff(wantA, a.SSH); diff != "" {
		t.Errorf("host a (-want +got):\n%s", diff)
	}
	b, _ := c.Host("b")
	wantB := wantA
	wantB.User, wantB.Port, wantB.Sudo = "root", 2222, false
	wantB.IdentityFiles = []string{"sub/b.key"} // relative to the folder of the file it is written in
	wantB.KnownHostsFile = "sub/kh"
	wantB.ConnectTimeout = time.Minute
	wantB.Bastion = Bastion{Address: "10.9.9.9", User: "root", Port: 2200}
	if diff := cmp.Diff(wantB, b.SSH); diff != "" {
		t.Errorf("host b (-want +got):\n%s", diff)
	}
	if b.Port != 2222 || b.User != "root" {
		t.Errorf("host b port/user %d %s", b.Port, b.User)
	}
	cc, _ := c.Host("c")
	if cc.User != "ops" || cc.SSH.User != "ops" || cc.SSH.Sudo {
		t.Errorf("host c: user %q sudo %v (sudo = false is written)", cc.SSH.User, cc.SSH.Sudo)
	}
}

func TestSudoFollowsUser(t *testing.T) {
	c := mustParse(t, map[string]string{"c.hcl": minimal + `
host "n2" {
  address = "192.168.1.11"
  user    = "deploy"
  roles   = ["worker"]
}`}, VarInputs{})
	n1, _ := c.Host("n1")
	n2, _ := c.Host("n2")
	if n1.SSH.Sudo || !n2.SSH.Sudo {
		t.Errorf("sudo: root %v, deploy %v; want false, true", n1.SSH.Sudo, n2.SSH.Sudo)
	}
}

func TestLoadResolvesPathsAgainstTheSpecFolder(t *testing.T) {
	dir := t.TempDir()
	spec := minimal + "\nssh {\n  identity_files = [\"id_ed25519\"]\n}\nartifacts {\n  dir = \"artifacts\"\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "cluster.hcl"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	c, diags := Load(dir, VarInputs{Env: []string{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := c.SSH().IdentityFiles; len(got) != 1 || got[0] != filepath.Join(dir, "id_ed25519") {
		t.Errorf("identity files %v", got)
	}
	if a := c.Artifacts(); a.Dir != filepath.Join(dir, "artifacts") {
		t.Errorf("artifacts %+v", a)
	}
}

func TestVariablePrecedence(t *testing.T) {
	decl := `
variable "region" {
  type    = string
  default = "default"
}
variable "count" {
  type    = number
  default = 1
}
variable "zones" {
  type    = list(string)
  default = []
}
`
	base := map[string]string{"c.hcl": decl + minimal}
	tests := []struct {
		name      string
		files     map[string]string
		in        VarInputs
		region    string
		regionSrc ValueSource
		zones     []string
	}{
		{"default", nil, VarInputs{}, "default", ValueSource{Kind: FromDefault}, nil},
		{"env", nil, VarInputs{Env: []string{"CLUSTERCTL_VAR_region=env", "CLUSTERCTL_VAR_zones=[\"a\", \"b\"]"}}, "env", ValueSource{Kind: FromEnv, Env: "CLUSTERCTL_VAR_region"}, []string{"a", "b"}},
		{"auto file over env", map[string]string{"b.auto.hclvars": `region = "auto-b"`, "a.auto.hclvars": `region = "auto-a"`},
			VarInputs{Env: []string{"CLUSTERCTL_VAR_region=env"}}, "auto-b", ValueSource{Kind: FromAutoFile, File: "b.auto.hclvars"}, nil},
		{"-var over auto file", map[string]string{"x.auto.hclvars": `region = "auto"`},
			VarInputs{Args: []VarArg{{Value: "region=flag"}}}, "flag", ValueSource{Kind: FromFlag}, nil},
		{"later -var-file wins", map[string]string{"prod.vars": "region = \"file\"\nzones = [\"z\"]\n"},
			VarInputs{Args: []VarArg{{Value: "region=flag"}, {File: true, Value: "prod.vars"}}}, "file", ValueSource{Kind: FromVarFile, File: "prod.vars"}, []string{"z"}},
		{"later -var wins", map[string]string{"prod.vars": `region = "file"`},
			VarInputs{Args: []VarArg{{File: true, Value: "prod.vars"}, {Value: "region=flag"}}}, "flag", ValueSource{Kind: FromFlag}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range base {
				files[k] = v
			}
			for k, v := range tt.files {
				files[k] = v
			}
			c := mustParse(t, files, tt.in)
			v, ok := c.Variable("region")
			if !ok || v.Value.AsString() != tt.region {
				t.Fatalf("region = %#v", v.Value)
			}
			if diff := cmp.Diff(tt.regionSrc, v.Source, cmpopts.IgnoreFields(ValueSource{}, "Range")); diff != "" {
				t.Errorf("source (-want +got):\n%s", diff)
			}
			if (v.Source.Kind == FromDefault || v.Source.Kind == FromAutoFile || v.Source.Kind == FromVarFile) != (v.Source.Range.Filename != "") {
				t.Errorf("source range %s for %s", v.Source.Range, v.Source)
			}
			z, _ := c.Variable("zones")
			var zones []string
			for it := z.Value.ElementIterator(); it.Next(); {
				_, e := it.Element()
				zones = append(zones, e.AsString())
			}
			if diff := cmp.Diff(tt.zones, zones); diff != "" {
				t.Errorf("zones (-want +got):\n%s", diff)
			}
			if n, _ := c.Variable("count"); !n.Value.Equals(cty.NumberIntVal(1)).True() {
				t.Errorf("count = %#v", n.Value)
			}
		})
	}
}

func TestLocalsAndFunctions(t *testing.T) {
	src := `
variable "subnet" {
  default = "10.1.0.0/24"
}
locals {
  first  = local.base + 1
  names  = [for i in [1, 2] : "worker-${i}"]
}
locals {
  base = 10
  dns  = cidrhost("10.96.0.0/12", -2)
}
cluster "c" {
  kubernetes_version = "1.37.2"
  cluster_dns        = local.dns
}
host "cp" {
  address = cidrhost(var.subnet, local.first)
  roles   = ["control-plane", "etcd", "worker"]
  labels  = merge({ "a" = "1" }, { "b" = upper("x") }, { "n" = tostring(length(local.names)) })
  taints  = [try(local.missing_ok, "gpu=true:NoSchedule")]
}
`
	// try() cannot hide a reference to an undeclared local: that is
	// reported before evaluation, like a typo anywhere else.
	if _, diags := parseStrings(map[string]string{"c.hcl": src}, VarInputs{}); firstError(diags) != "c.hcl:21 Reference to undeclared local value" {
		t.Fatalf("diagnostics: %v", diags)
	}
	src = strings.Replace(src, "try(local.missing_ok, ", "try(local.names[5], ", 1)
	c := mustParse(t, map[string]string{"c.hcl": src}, VarInputs{})
	h, _ := c.Host("cp")
	if h.Address != "10.1.0.11" || c.ClusterDNS().String() != "10.111.255.254" {
		t.Errorf("address %s, dns %s", h.Address, c.ClusterDNS())
	}
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "X", "n": "2"}, h.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Taint{{Key: "gpu", Value: "true", Effect: "NoSchedule"}}, h.Taints); diff != "" {
		t.Errorf("taints (-want +got):\n%s", diff)
	}
}

func TestSensitiveValues(t *testing.T) {
	src := `
variable "token" {
  type      = string
  sensitive = true
  default   = "s3cr3t!token"
}
component "kube-apiserver" {
  extra_args = {
    "token-auth-file" = "/etc/tokens/${var.token}"
    "v"               = "2"
  }
}
` + minimal
	c := mustParse(t, map[string]string{"c.hcl": src}, VarInputs{})
	api, _ := c.Component("kube-apiserver")
	if !api.IsSensitiveArg("token-auth-file") || api.IsSensitiveArg("v") {
		t.Errorf("sensitive args: token-auth-file %v, v %v", api.IsSensitiveArg("token-auth-file"), api.IsSensitiveArg("v"))
	}
	if api.ExtraArgs["token-auth-file"] != "/etc/tokens/s3cr3t!token" {
		t.Errorf("extra_args %v", api.ExtraArgs)
	}
	v, _ := c.Variable("token")
	if !v.Sensitive || v.DisplayValue() != "(sensitive)" || v.Value.IsMarked() {
		t.Errorf("variable %+v shows %s", v, v.DisplayValue())
	}

	// A sensitive value in a diagnostic is shown as (sensitive).
	bad := strings.Replace(src, `"/etc/tokens/${var.token}"`, `"x"`, 1) + `
host "n2" {
  address = var.token
  roles   = ["worker"]
}`
	_, diags := parseStrings(map[string]string{"c.hcl": bad}, VarInputs{})
	if !diags.HasErrors() || strings.Contains(diags.Error(), "s3cr3t") || !strings.Contains(diags.Error(), "(sensitive)") {
		t.Errorf("diagnostics %v", diags)
	}
}

func TestClusterIsImmutable(t *testing.T) {
	c := mustParse(t, map[string]string{"c.hcl": minimal + `
component "kubelet" {
  extra_args = { "max-pods" = "50" }
}`}, VarInputs{})
	hs := c.Hosts()
	hs[0].Roles[0] = "changed"
	hs[0].Labels["x"] = "y"
	hs[0].SSH.IdentityFiles = append(hs[0].SSH.IdentityFiles, "k")
	k, _ := c.Component("kubelet")
	k.ExtraArgs["max-pods"] = "1"
	k.Hosts[0] = "other"
	c.Components()[0].Hosts[0] = "other"
	c.Files()[0] = "other"

	h, _ := c.Host("n1")
	if h.Roles[0] != RoleControlPlane || len(h.Labels) != 0 || len(h.SSH.IdentityFiles) != 0 {
		t.Errorf("host changed through a copy: %+v", h)
	}
	k2, _ := c.Component("kubelet")
	if k2.ExtraArgs["max-pods"] != "50" || k2.Hosts[0] != "n1" || c.Components()[0].Hosts[0] != "n1" || c.Files()[0] != "c.hcl" {
		t.Errorf("component changed through a copy: %+v", k2)
	}
}

func TestComponentHosts(t *testing.T) {
	c := mustParse(t, map[string]string{"c.hcl": `
cluster "c" {
  kubernetes_version = "1.37.2"
  api_endpoint       = "10.0.0.100:6443"
}
host "cp-1" {
  address = "10.0.0.1"
  roles   = ["control-plane", "etcd"]
}
host "cp-2" {
  address = "10.0.0.2"
  roles   = ["control-plane", "etcd"]
}
host "etcd-3" {
  address = "10.0.0.3"
  roles   = ["etcd"]
}
host "w" {
  address = "10.0.0.4"
  roles   = ["worker"]
}
component "kubelet" {
  hosts   = ["w", "cp-1"]
  version = "1.36.3"
}
component "kube-proxy" {
  hosts = ["w"]
}
component "cni" {
  hosts = ["w"]
}
component "containerd" {
  hosts = ["w", "cp-1"]
}
`}, VarInputs{})
	got := map[string][]string{}
	for _, comp := range c.Components() {
		got[comp.Name] = comp.Hosts
	}
	want := map[string][]string{
		"etcd": {"cp-1", "cp-2", "etcd-3"}, "kube-apiserver": {"cp-1", "cp-2"}, "kube-controller-manager": {"cp-1", "cp-2"},
		"kube-scheduler": {"cp-1", "cp-2"}, "containerd": {"cp-1", "w"}, "kubelet": {"cp-1", "w"}, "kube-proxy": {"w"}, "cni": {"w"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("component hosts (-want +got):\n%s", diff)
	}
	k, _ := c.Component("kubelet")
	if k.Version != "1.36.3" || !k.VersionSet || !k.HostsSet || k.VersionRange.Start.Line != 24 {
		t.Errorf("kubelet %+v", k)
	}
	if n := len(c.HostsRunning("kube-apiserver")); n != 2 {
		t.Errorf("%d apiserver hosts", n)
	}
	if w := c.HostsWithRole(RoleWorker); len(w) != 1 || w[0].Name != "w" {
		t.Errorf("workers %v", w)
	}
}

func TestPodCapacityFollowsNodeMask(t *testing.T) {
	spec := func(mask string) string {
		return `
cluster "c" {
  kubernetes_version = "1.37.2"
  pod_cidr           = "10.244.0.0/24"
}
host "a" {
  address = "10.0.0.1"
  roles   = ["control-plane", "etcd", "worker"]
}
host "b" {
  address = "10.0.0.2"
  roles   = ["worker"]
}
component "kube-controller-manager" {
  extra_args = { "node-cidr-mask-size" = "` + mask + `" }
}`
	}
	if _, diags := parseStrings(map[string]string{"c.hcl": spec("25")}, VarInputs{}); diags.HasErrors() {
		t.Errorf("/24 split into /25s holds 2 nodes: %v", diags)
	}
	if _, diags := parseStrings(map[string]string{"c.hcl": spec("24")}, VarInputs{}); firstError(diags) != "c.hcl:15 pod_cidr too small" {
		t.Errorf("/24 in /24s: %v", diags)
	}
	if _, diags := parseStrings(map[string]string{"c.hcl": spec("x")}, VarInputs{}); firstError(diags) != "c.hcl:15 Invalid node CIDR mask size" {
		t.Errorf("mask x: %v", diags)
	}
}

func TestParseTaint(t *testing.T) {
	good := map[string]Taint{
		"a=b:NoSchedule":            {"a", "b", "NoSchedule"},
		"a:NoExecute":               {"a", "", "NoExecute"},
		"example.com/x=:NoSchedule": {"example.com/x", "", "NoSchedule"},
		"k=v:PreferNoSchedule":      {"k", "v", "PreferNoSchedule"},
	}
	for in, want := range good {
		got, err := parseTaint(in)
		if err != nil || got != want || got.String() != strings.Replace(in, "=:", ":", 1) {
			t.Errorf("parseTaint(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "a", "a=b", "a=b:", ":NoSchedule", "a=b:noschedule", "a b:NoSchedule", "a=b c:NoSchedule"} {
		if got, err := parseTaint(in); err == nil {
			t.Errorf("parseTaint(%q) = %+v, want an error", in, got)
		}
	}
}

func TestNames(t *testing.T) {
	for s, want := range map[string]bool{"cp-1": true, "node.example.com": true, "CP": false, "-a": false, "a_b": false, "": false, strings.Repeat("a", 64): false} {
		if dnsSubdomain(s) != want {
			t.Errorf("dnsSubdomain(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"Host.Example.com.": true, "10.0.0.300": false, "1.2.3.4": false, "h1": true} {
		if hostname(s) != want {
			t.Errorf("hostname(%q) != %v", s, want)
		}
	}
	if got := suggest("etc", []string{"control-plane", "etcd", "worker"}); got != ` Did you mean "etcd"?` {
		t.Errorf("suggest = %q", got)
	}
	if got := suggest("c", []string{"a", "b"}); got != "" {
		t.Errorf("suggest for a one-letter name = %q", got)
	}
}

func TestNullMeansDefault(t *testing.T) {
	c := mustParse(t, map[string]string{"c.hcl": strings.Replace(minimal, `kubernetes_version = "1.36.3"`, "kubernetes_version = \"1.36.3\"\n  pod_cidr = null\n  cluster_dns = null", 1)}, VarInputs{})
	if c.PodCIDR().String() != "10.244.0.0/16" || c.ClusterDNS().String() != "10.96.0.10" {
		t.Errorf("null did not fall back to the defaults: %s %s", c.PodCIDR(), c.ClusterDNS())
	}
}

func TestRequiredAttributesMustNotBeNull(t *testing.T) {
	for _, tt := range []struct{ old, new, want string }{
		{`address = "192.168.1.10"`, `address = null`, "c.hcl:6 Missing value for address"},
		{`roles   = ["control-plane", "etcd", "worker"]`, `roles = null`, "c.hcl:7 Missing value for roles"},
		{`kubernetes_version = "1.36.3"`, `kubernetes_version = null`, "c.hcl:3 Missing value for kubernetes_version"},
	} {
		_, diags := parseStrings(map[string]string{"c.hcl": strings.Replace(minimal, tt.old, tt.new, 1)}, VarInputs{})
		if got := firstError(diags); got != tt.want {
			t.Errorf("%s: first error %q, want %q (%v)", tt.new, got, tt.want, diags)
		}
	}
}

func TestPortForwardedHostsNeedInternalAddresses(t *testing.T) {
	hosts := `
host "a" {
  address = "127.0.0.1"
  port    = 2222
  roles   = ["control-plane", "etcd", "worker"]
  %s
}
host "b" {
  address = "127.0.0.1"
  port    = 2200
  roles   = ["worker"]
  %s
}`
	spec := strings.Replace(minimal, `host "n1" {`, `host "n0" {`, 1)
	_, diags := parseStrings(map[string]string{"c.hcl": spec + fmt.Sprintf(hosts, "", "")}, VarInputs{})
	if got := firstError(diags); got != "c.hcl:17 Duplicate node address" {
		t.Errorf("shared node address: %q", got)
	}
	c := mustParse(t, map[string]string{"c.hcl": spec + fmt.Sprintf(hosts, `internal_address = "192.168.56.11"`, `internal_address = "192.168.56.12"`)}, VarInputs{})
	b, _ := c.Host("b")
	if b.Address != "127.0.0.1" || b.Port != 2200 || b.NodeAddress().String() != "192.168.56.12" {
		t.Errorf("host b %+v", b)
	}
}

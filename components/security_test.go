package components

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/plan"
)

// testKeyring is one secretbox write key.
func testKeyring() pki.Keyring {
	return pki.Keyring{FormatVersion: pki.KeyringFormat, Keys: []pki.EncryptionKey{{
		Name: "key1", Serial: 1, Provider: pki.ProviderSecretbox, Secret: bytes.Repeat([]byte{1}, 32), State: pki.KeyWrite}}}
}

func args(d Desired) map[string]string {
	out := map[string]string{}
	for _, a := range d.Unit.Args {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		out[k] = v
	}
	return out
}

func configEntry(t *testing.T, d Desired, name string) File {
	t.Helper()
	for _, f := range d.Config {
		if f.Path == name {
			return f
		}
	}
	t.Fatalf("%s on %s has no config file %s", d.Component, d.Host, name)
	return File{}
}

func sharedEntry(d Desired, p string) (File, bool) {
	for _, f := range d.Shared {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

// strongSuites checks a cipher suite list: ECDHE, AEAD, nothing else.
func strongSuites(t *testing.T, what, list string) {
	t.Helper()
	suites := strings.Split(list, ",")
	if len(suites) == 0 || list == "" {
		t.Fatalf("%s: no cipher suites", what)
	}
	for _, s := range suites {
		if !strings.HasPrefix(s, "TLS_ECDHE_") || !(strings.HasSuffix(s, "_GCM_SHA256") || strings.HasSuffix(s, "_GCM_SHA384") || strings.HasSuffix(s, "_CHACHA20_POLY1305")) {
			t.Errorf("%s: weak or unknown cipher suite %s", what, s)
		}
	}
}

// kube-apiserver: Secrets encrypted with the keyring's configuration
// (0600, through the current link so the flag is absolute), the audit
// policy and a log kept 30 days in 10 files of 100 MB, TLS 1.2+ with
// strong suites, and every PKI file root's and 0600 (the keyring copy
// among them, sensitive).
func TestAPIServerHardening(t *testing.T) {
	in := testInput(t, loadSpec(t, testSpec), labFacts)
	d := render(t, in, bundle.KubeAPIServer, "cp-1")
	a := args(d)
	want := map[string]string{
		"encryption-provider-config": "/etc/clusterctl/kube-apiserver/current/encryption-config.yaml",
		"audit-policy-file":          "/etc/clusterctl/kube-apiserver/current/audit-policy.yaml",
		"audit-log-path":             "/var/log/clusterctl/kube-apiserver-audit.log",
		"audit-log-maxage":           "30",
		"audit-log-maxbackup":        "10",
		"audit-log-maxsize":          "100",
		"tls-min-version":            "VersionTLS12",
		// stops in about 2s (gracefully) instead of the agent's kill
		"shutdown-send-retry-after":               "true",
		"shutdown-watch-termination-grace-period": "2s",
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("--%s=%q, want %q", k, a[k], v)
		}
	}
	strongSuites(t, "kube-apiserver", a["tls-cipher-suites"])

	enc := configEntry(t, d, EncryptionConfigFile)
	wantCfg, _ := pki.RenderEncryptionConfig(testKeyring())
	if enc.Mode != 0o600 || !bytes.Equal(enc.Data, wantCfg) {
		t.Errorf("encryption config mode %o:\n%s", enc.Mode, enc.Data)
	}
	if p := configEntry(t, d, AuditPolicyFile); p.Mode != 0o600 || string(p.Data) != auditPolicy {
		t.Errorf("audit policy mode %o", p.Mode)
	}
	obj, err := d.Object()
	if err != nil {
		t.Fatal(err)
	}
	var shown, secret int
	for _, at := range obj.Attrs {
		if !strings.HasPrefix(at.Name, EncryptionConfigFile+":") {
			continue
		}
		shown++
		if strings.HasSuffix(at.Name, ".secret") {
			secret++
			if !at.Sensitive || !strings.HasPrefix(at.Value, "sha256:") {
				t.Errorf("%s = %q is not a sensitive digest", at.Name, at.Value)
			}
		} else if at.Sensitive {
			t.Errorf("%s is hidden, only secrets should be", at.Name)
		}
	}
	if secret != 1 || shown < 3 {
		t.Errorf("encryption config attributes: %d shown, %d secret", shown, secret)
	}
	if got := providerOrder(obj.Attrs); !slices.Equal(got, []string{"secretbox/key1", pki.Identity}) {
		t.Errorf("provider order from the attributes: %v", got)
	}
	ring, ok := sharedEntry(d, "/etc/kubernetes/pki/encryption/keyring.json")
	if !ok || !ring.Sensitive || ring.Mode != 0o600 {
		t.Errorf("keyring copy: %+v %v", ring.Mode, ok)
	}
	for _, f := range d.Shared {
		if f.Mode != 0o600 || f.Owner != "" {
			t.Errorf("%s: mode %o owner %q, want root's 0600", f.Path, f.Mode, f.Owner)
		}
	}
	gen, err := d.GenerationFiles()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range gen {
		if f.Path == agent.UnitFile && f.Mode != 0o600 {
			t.Errorf("unit.json mode %o", f.Mode)
		}
	}
}

// The controller-manager and the scheduler serve TLS 1.2+ with strong
// suites too.
func TestControllerManagerSchedulerTLS(t *testing.T) {
	in := testInput(t, loadSpec(t, testSpec), labFacts)
	for _, comp := range []string{bundle.KubeControllerManager, bundle.KubeScheduler} {
		a := args(render(t, in, comp, "cp-1"))
		if a["tls-min-version"] != "VersionTLS12" {
			t.Errorf("%s: --tls-min-version=%q", comp, a["tls-min-version"])
		}
		strongSuites(t, comp, a["tls-cipher-suites"])
	}
}

// etcd runs as the user etcd: the unit says so (and the plan shows it),
// the installer makes the user, the data folder and etcd's own TLS folder
// are 0700 etcd's, its copies of its certificates are etcd's 0600 and the
// flags name them, with TLS 1.2+ and strong suites.
func TestEtcdRunsAsItsOwnUser(t *testing.T) {
	in := testInput(t, loadSpec(t, testSpec), labFacts)
	d := render(t, in, bundle.Etcd, "cp-1")
	if d.Unit.User != EtcdUser || d.Unit.Dir != EtcdDataDir || !slices.Equal(d.Unit.Owns, []string{EtcdDataDir, EtcdTLSDir}) {
		t.Errorf("unit user %q dir %q owns %v", d.Unit.User, d.Unit.Dir, d.Unit.Owns)
	}
	if diff := cmp.Diff([]SystemUser{{Name: "etcd", Home: "/var/lib/etcd"}}, d.Users); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
	dirs := map[string]Dir{}
	for _, dir := range d.Dirs {
		dirs[dir.Path] = dir
	}
	for _, p := range []string{EtcdDataDir, EtcdTLSDir} {
		if dirs[p].Mode != 0o700 || dirs[p].Owner != EtcdUser {
			t.Errorf("%s: %+v, want 0700 etcd", p, dirs[p])
		}
	}
	a := args(d)
	for flag, file := range map[string]string{"trusted-ca-file": "ca.crt", "cert-file": "server.crt", "key-file": "server.key",
		"peer-trusted-ca-file": "ca.crt", "peer-cert-file": "peer.crt", "peer-key-file": "peer.key"} {
		p := path.Join(EtcdTLSDir, file)
		if a[flag] != p {
			t.Errorf("--%s=%q, want %q", flag, a[flag], p)
		}
		f, ok := sharedEntry(d, p)
		if !ok || f.Owner != EtcdUser || f.Mode != 0o600 {
			t.Errorf("%s: %v owner %q mode %o", p, ok, f.Owner, f.Mode)
		}
	}
	if f, _ := sharedEntry(d, path.Join(EtcdTLSDir, "server.key")); string(f.Data) != "pki:etcd/server-cp-1.key" || !f.Sensitive {
		t.Errorf("server key copy %q sensitive %v", f.Data, f.Sensitive)
	}
	if a["tls-min-version"] != "TLS1.2" || a["client-cert-auth"] != "true" || a["peer-client-cert-auth"] != "true" {
		t.Errorf("etcd TLS flags %v", a)
	}
	strongSuites(t, "etcd", a["cipher-suites"])
	obj, err := d.Object()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(obj.Attrs, plan.Attr{Name: "unit.json:user", Value: "etcd"}) {
		t.Error("the plan does not show who etcd runs as")
	}
	// A component that runs as root has no such attribute: its recorded
	// attributes are what they were.
	for _, at := range mustObject(t, render(t, in, bundle.KubeScheduler, "cp-1")).Attrs {
		if at.Name == "unit.json:user" {
			t.Error("kube-scheduler shows a user")
		}
	}
}

func mustObject(t *testing.T, d Desired) plan.Object {
	t.Helper()
	o, err := d.Object()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The kubelet serves TLS 1.2+ with strong suites, limits the processes of
// a pod (4096 by default, the spec's security.pod_pids_limit otherwise),
// and its configuration file is root's 0600.
func TestKubeletHardening(t *testing.T) {
	for _, tt := range []struct {
		extra string
		want  int
	}{{"", 4096}, {"security {\n  pod_pids_limit = 512\n}\n", 512}, {"security {\n  pod_pids_limit = -1\n}\n", -1}} {
		in := testInput(t, loadSpec(t, testSpec+tt.extra), labFacts)
		d := render(t, in, bundle.Kubelet, "worker-1")
		f := configEntry(t, d, "kubelet-config.yaml")
		var cfg struct {
			TLSMinVersion   string   `yaml:"tlsMinVersion"`
			TLSCipherSuites []string `yaml:"tlsCipherSuites"`
			PodPidsLimit    *int     `yaml:"podPidsLimit"`
		}
		if err := yaml.Unmarshal(f.Data, &cfg); err != nil {
			t.Fatal(err)
		}
		if f.Mode != 0o600 || cfg.TLSMinVersion != "VersionTLS12" || cfg.PodPidsLimit == nil || *cfg.PodPidsLimit != tt.want {
			t.Errorf("%q: mode %o, tlsMinVersion %q, podPidsLimit %v", tt.extra, f.Mode, cfg.TLSMinVersion, cfg.PodPidsLimit)
		}
		strongSuites(t, "kubelet", strings.Join(cfg.TLSCipherSuites, ","))
	}
}

// auditPolicyV1 is audit.k8s.io/v1 Policy, as far as the API has fields:
// decoding with KnownFields rejects any other.
type auditPolicyV1 struct {
	APIVersion        string   `yaml:"apiVersion"`
	Kind              string   `yaml:"kind"`
	OmitStages        []string `yaml:"omitStages"`
	OmitManagedFields bool     `yaml:"omitManagedFields"`
	Rules             []struct {
		Level      string   `yaml:"level"`
		Users      []string `yaml:"users"`
		UserGroups []string `yaml:"userGroups"`
		Verbs      []string `yaml:"verbs"`
		Resources  []struct {
			Group         string   `yaml:"group"`
			Resources     []string `yaml:"resources"`
			ResourceNames []string `yaml:"resourceNames"`
		} `yaml:"resources"`
		Namespaces        []string `yaml:"namespaces"`
		NonResourceURLs   []string `yaml:"nonResourceURLs"`
		OmitStages        []string `yaml:"omitStages"`
		OmitManagedFields *bool    `yaml:"omitManagedFields"`
	} `yaml:"rules"`
}

type auditRequest struct {
	user, group, verb, apiGroup, resource, url string
}

// level is the policy's answer for r, the first matching rule's level
// (the API server's policy checker, without namespaces and names).
func (p auditPolicyV1) level(r auditRequest) string {
	any := func(list []string, f func(string) bool) bool { return len(list) == 0 || slices.ContainsFunc(list, f) }
	eq := func(s string) func(string) bool { return func(x string) bool { return x == s } }
	for _, rule := range p.Rules {
		if !any(rule.Users, eq(r.user)) || !any(rule.UserGroups, eq(r.group)) || !any(rule.Verbs, eq(r.verb)) {
			continue
		}
		if r.url != "" {
			if len(rule.Resources) > 0 || !any(rule.NonResourceURLs, func(u string) bool {
				return u == r.url || strings.HasSuffix(u, "*") && strings.HasPrefix(r.url, strings.TrimSuffix(u, "*"))
			}) {
				continue
			}
			return rule.Level
		}
		if len(rule.NonResourceURLs) > 0 {
			continue
		}
		if len(rule.Resources) == 0 {
			return rule.Level
		}
		base, sub, _ := strings.Cut(r.resource, "/")
		for _, gr := range rule.Resources {
			if gr.Group != r.apiGroup {
				continue
			}
			if any(gr.Resources, func(x string) bool {
				return x == r.resource || x == "*" || sub != "" && (x == base+"/*" || x == "*/"+sub)
			}) {
				return rule.Level
			}
		}
	}
	return "" // no rule: the API server logs nothing
}

// The audit policy is a valid audit.k8s.io/v1 Policy, and says what
// docs/security.md says: request and response bodies for RBAC and the
// other changes to who may do what, requests for pods, never more than
// Metadata for Secrets, ConfigMaps and token reviews or requests, nothing
// for health probes, events and the system components' reads, Metadata
// for the rest.
func TestAuditPolicy(t *testing.T) {
	var p auditPolicyV1
	dec := yaml.NewDecoder(strings.NewReader(auditPolicy))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if p.APIVersion != "audit.k8s.io/v1" || p.Kind != "Policy" || !slices.Equal(p.OmitStages, []string{"RequestReceived"}) {
		t.Fatalf("header: %s %s %v", p.APIVersion, p.Kind, p.OmitStages)
	}
	levels := []string{"None", "Metadata", "Request", "RequestResponse"}
	for i, r := range p.Rules {
		if !slices.Contains(levels, r.Level) {
			t.Errorf("rule %d: level %q", i, r.Level)
		}
		if len(r.NonResourceURLs) > 0 && (len(r.Resources) > 0 || len(r.Namespaces) > 0) {
			t.Errorf("rule %d: both resources and non-resource URLs", i)
		}
	}
	if last := p.Rules[len(p.Rules)-1]; last.Level != "Metadata" || len(last.Verbs)+len(last.Resources)+len(last.Users)+len(last.NonResourceURLs) != 0 {
		t.Error("the last rule is not Metadata for everything")
	}
	const admin, kubelet = "kubernetes-admin", "system:node:w1"
	tests := []struct {
		r    auditRequest
		want string
	}{
		{auditRequest{user: "x", verb: "get", url: "/healthz"}, "None"},
		{auditRequest{user: "x", verb: "get", url: "/readyz"}, "None"},
		{auditRequest{user: "x", verb: "get", url: "/livez/etcd"}, "None"},
		{auditRequest{user: "x", verb: "get", url: "/version"}, "None"},
		{auditRequest{user: "prometheus", verb: "get", url: "/metrics"}, "Metadata"},
		{auditRequest{user: kubelet, group: "system:nodes", verb: "create", resource: "events"}, "None"},
		{auditRequest{user: kubelet, group: "system:nodes", verb: "update", apiGroup: "coordination.k8s.io", resource: "leases"}, "None"},
		{auditRequest{user: kubelet, group: "system:nodes", verb: "watch", resource: "pods"}, "None"},
		{auditRequest{user: "system:kube-controller-manager", verb: "list", apiGroup: "apps", resource: "deployments"}, "None"},
		{auditRequest{user: admin, verb: "get", resource: "secrets"}, "Metadata"},
		{auditRequest{user: admin, verb: "create", resource: "secrets"}, "Metadata"},
		{auditRequest{user: admin, verb: "update", resource: "configmaps"}, "Metadata"},
		{auditRequest{user: kubelet, group: "system:nodes", verb: "get", resource: "secrets"}, "None"},
		{auditRequest{user: admin, verb: "create", resource: "serviceaccounts/token"}, "Metadata"},
		{auditRequest{user: "system:kube-controller-manager", verb: "create", apiGroup: "authentication.k8s.io", resource: "tokenreviews"}, "Metadata"},
		{auditRequest{user: admin, verb: "create", apiGroup: "rbac.authorization.k8s.io", resource: "clusterrolebindings"}, "RequestResponse"},
		{auditRequest{user: admin, verb: "delete", apiGroup: "rbac.authorization.k8s.io", resource: "roles"}, "RequestResponse"},
		{auditRequest{user: admin, verb: "get", apiGroup: "rbac.authorization.k8s.io", resource: "roles"}, "Metadata"},
		{auditRequest{user: admin, verb: "patch", resource: "namespaces"}, "RequestResponse"},
		{auditRequest{user: admin, verb: "create", resource: "serviceaccounts"}, "RequestResponse"},
		{auditRequest{user: admin, verb: "create", apiGroup: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"}, "RequestResponse"},
		{auditRequest{user: admin, verb: "update", apiGroup: "certificates.k8s.io", resource: "certificatesigningrequests/approval"}, "RequestResponse"},
		{auditRequest{user: admin, verb: "create", resource: "pods"}, "Request"},
		{auditRequest{user: admin, verb: "create", resource: "pods/exec"}, "Metadata"},
		{auditRequest{user: admin, verb: "create", apiGroup: "apps", resource: "deployments"}, "Metadata"},
		{auditRequest{user: admin, verb: "list", resource: "nodes"}, "Metadata"},
	}
	for _, tt := range tests {
		if got := p.level(tt.r); got != tt.want {
			t.Errorf("%+v: level %q, want %q", tt.r, got, tt.want)
		}
	}
}

// recHost records what the installer and the hooks do on a host, answers
// agent calls with OK (rewrite-secrets with a count) and `cat
// installed.json` with installed.
type recHost struct {
	name, root string
	installed  []byte
	mu         sync.Mutex
	cmds       []string
	writes     []string
}

func (h *recHost) Name() string { return h.name }
func (h *recHost) Root() string { return h.root }
func (h *recHost) Run(_ context.Context, cmd string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cmds = append(h.cmds, cmd)
	switch {
	case strings.Contains(cmd, " call '") && strings.Contains(cmd, agent.OpRewriteSecrets):
		return []byte(`{"ok":true,"log":["rewrote 3 Secrets"]}` + "\n"), nil
	case strings.Contains(cmd, " call '"):
		return []byte(`{"ok":true}` + "\n"), nil
	case strings.HasPrefix(cmd, "cat ") && strings.Contains(cmd, "installed.json"):
		return h.installed, nil
	}
	return nil, nil
}
func (h *recHost) Upload(context.Context, string, string, string, fs.FileMode) (int64, error) {
	return 0, nil
}
func (h *recHost) WriteFile(_ context.Context, p string, _ []byte, _ fs.FileMode) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.writes = append(h.writes, p)
	h.cmds = append(h.cmds, "<write "+p+">")
	return nil
}

func (h *recHost) rewrites() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.cmds {
		if strings.Contains(c, agent.OpRewriteSecrets) {
			n++
		}
	}
	return n
}

// The installer makes etcd's user before anything else, hands etcd its
// folders (recursively) and, after writing them, its files; on a test host
// (a rooted layout) it does neither. The user script is valid sh.
func TestInstallMakesUsersAndHandsOverFiles(t *testing.T) {
	in := testInput(t, loadSpec(t, testSpec), labFacts)
	d := render(t, in, bundle.Etcd, "cp-1")
	h := &recHost{name: "cp-1"}
	if err := (&Installer{Cluster: "t"}).Install(context.Background(), h, d, nil); err != nil {
		t.Fatal(err)
	}
	prepare := h.cmds[0]
	if !strings.HasPrefix(prepare, "nologin=$(command -v nologin") || !strings.Contains(prepare, "if ! grep -q '^'etcd':' /etc/group; then") || !strings.Contains(prepare, "useradd --system --gid etcd --home-dir /var/lib/etcd") {
		t.Errorf("the first command does not make the user:\n%s", prepare)
	}
	for _, want := range []string{"chmod 700 /var/lib/etcd", "chown -R etcd:etcd /var/lib/etcd", "chown -R etcd:etcd /etc/kubernetes/etcd-tls", "chmod 600 /etc/clusterctl/etcd"} {
		if !strings.Contains(prepare, want) {
			t.Errorf("prepare lacks %q:\n%s", want, prepare)
		}
	}
	if strings.Index(prepare, "mkdir -p /var/lib/etcd") > strings.Index(prepare, "chown -R etcd:etcd /var/lib/etcd") {
		t.Error("chown before mkdir")
	}
	lastWrite, chown := -1, -1
	for i, c := range h.cmds {
		if strings.HasPrefix(c, "<write /etc/kubernetes/etcd-tls/") {
			lastWrite = i
		}
		if strings.HasPrefix(c, "chown etcd:etcd ") && strings.Contains(c, "/etc/kubernetes/etcd-tls/server.key") {
			chown = i
		}
	}
	if lastWrite < 0 || chown < lastWrite {
		t.Errorf("files handed over at %d, last written at %d:\n%s", chown, lastWrite, strings.Join(h.cmds, "\n"))
	}
	if out, err := exec.Command("/bin/sh", "-n", "-c", ensureUsersScript(d.Users)).CombinedOutput(); err != nil {
		t.Errorf("user script: %v %s", err, out)
	}

	rooted := &recHost{name: "cp-1", root: t.TempDir()}
	if err := (&Installer{Cluster: "t"}).Install(context.Background(), rooted, d, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range rooted.cmds {
		if strings.Contains(c, "useradd") || strings.Contains(c, "chown") || strings.Contains(c, "chmod 600") {
			t.Errorf("a test host got %q", c)
		}
	}
}

// observed is an installed kube-apiserver running with the encryption
// configuration of r (nil: without encryption, as an earlier clusterctl
// installed it).
func observed(t *testing.T, r *pki.Keyring) InstalledComponent {
	t.Helper()
	ic := InstalledComponent{Generation: Generation{Number: 1, Version: "1.37.2", Args: []string{"--secure-port=6443"}}}
	if r == nil {
		return ic
	}
	f, err := encryptionConfig(*r)
	if err != nil {
		t.Fatal(err)
	}
	ic.Args = append(ic.Args, "--encryption-provider-config="+currentFile(bundle.KubeAPIServer, EncryptionConfigFile))
	ic.FileAttrs = &FileAttrs{Version: FileAttrsVersion, Attrs: FileAttrList(f)}
	return ic
}

const haSpec = `
cluster "t" {
  kubernetes_version = "1.37.2"
}
ssh {
  user = "root"
  identity_files = ["/dev/null"]
  known_hosts_file = "/dev/null"
}
host "cp-1" {
  address = "10.0.0.11"
  roles   = ["control-plane", "etcd"]
}
host "cp-2" {
  address = "10.0.0.12"
  roles   = ["control-plane", "etcd"]
}
`

type memStore map[string][]byte

func (m memStore) Read(p string) ([]byte, error) {
	if b, ok := m[p]; ok {
		return b, nil
	}
	return nil, fs.ErrNotExist
}
func (m memStore) Write(p string, b []byte, _ fs.FileMode) error { m[p] = bytes.Clone(b); return nil }

// PlanKeyring: a new cluster gets a write key, kept by the next plan; a
// cluster of an earlier clusterctl (API servers without encryption) starts
// from plaintext (with two control planes: staged); a lost local keyring
// is restored from a control plane's copy, and refused when none has one
// while the API servers encrypt.
func TestPlanKeyring(t *testing.T) {
	ctx := context.Background()
	c := loadSpec(t, haSpec)

	store := memStore{}
	kp, err := PlanKeyring(ctx, store, c, map[string]Installed{}, nil)
	if err != nil || len(kp.Changes) != 1 || kp.Changes[0].Address != "cert.encryption/key1" || kp.Changes[0].Action != plan.Create {
		t.Fatalf("new cluster: %+v %v", kp, err)
	}
	first := bytes.Clone(store[pki.KeyringFile])
	ring, err := pki.ParseKeyring(first)
	if err != nil || ring.WriteKey() == nil {
		t.Fatalf("new cluster keyring: %v %+v", err, ring)
	}
	running := map[string]Installed{}
	for _, h := range []string{"cp-1", "cp-2"} {
		running[h] = Installed{Components: map[string]InstalledComponent{bundle.KubeAPIServer: observed(t, &ring)}}
	}
	kp, err = PlanKeyring(ctx, store, c, running, nil)
	if err != nil || len(kp.Changes) != 0 || !bytes.Equal(store[pki.KeyringFile], first) {
		t.Fatalf("second plan changed the keyring: %+v %v", kp, err)
	}

	plaintext := map[string]Installed{
		"cp-1": {Components: map[string]InstalledComponent{bundle.KubeAPIServer: observed(t, nil)}},
		"cp-2": {Components: map[string]InstalledComponent{bundle.KubeAPIServer: observed(t, nil)}},
	}
	store = memStore{}
	kp, err = PlanKeyring(ctx, store, c, plaintext, func(context.Context, string, string) ([]byte, error) { return nil, fs.ErrNotExist })
	if err != nil || len(kp.Changes) != 1 {
		t.Fatalf("upgrade: %+v %v", kp, err)
	}
	ring, _ = pki.ParseKeyring(store[pki.KeyringFile])
	if ring.WriteKey() != nil || ring.Staged() == nil || !strings.Contains(kp.Changes[0].Reason, "staged") {
		t.Errorf("an HA upgrade does not stage the first key: %v (%s)", ring.ProviderOrder(), kp.Changes[0].Reason)
	}

	// Lost: the hosts encrypt, the local keyring is gone.
	var asked []string
	read := func(_ context.Context, host, p string) ([]byte, error) {
		asked = append(asked, host+":"+p)
		if host == "cp-2" {
			return first, nil
		}
		return nil, errors.New("no such file")
	}
	store = memStore{}
	kp, err = PlanKeyring(ctx, store, c, running, read)
	if err != nil || kp.Restored != "cp-2" || len(kp.Changes) != 0 || !bytes.Equal(store[pki.KeyringFile], first) {
		t.Fatalf("restore: %+v %v (asked %v)", kp, err, asked)
	}
	if !slices.Equal(asked, []string{"cp-1:/etc/kubernetes/pki/encryption/keyring.json", "cp-2:/etc/kubernetes/pki/encryption/keyring.json"}) {
		t.Errorf("asked %v", asked)
	}
	_, err = PlanKeyring(ctx, memStore{}, c, running, func(context.Context, string, string) ([]byte, error) { return nil, fs.ErrNotExist })
	if !errors.Is(err, ErrKeyringLost) {
		t.Errorf("lost keyring: %v", err)
	}

	// A lower serial than the cluster's key is refused.
	low := loadSpec(t, haSpec)
	store = memStore{pki.KeyringFile: mustMarshal(t, pki.Keyring{FormatVersion: 1, Keys: []pki.EncryptionKey{{Name: "key3", Serial: 3, Provider: "secretbox", Secret: make([]byte, 32), State: pki.KeyWrite}}})}
	if _, err := PlanKeyring(ctx, store, low, running, nil); !errors.Is(err, pki.ErrKeySerialLowered) {
		t.Errorf("lower serial: %v", err)
	}
}

func mustMarshal(t *testing.T, r pki.Keyring) []byte {
	t.Helper()
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The rewrite hooks, on two control planes. After a change that makes an
// API server write with a new key, Secrets are rewritten once every API
// server does (on the last one), not before; before a change that drops a
// key, they are rewritten first; a change that touches no key rewrites
// nothing.
func TestSecretRewriteHooks(t *testing.T) {
	ctx := context.Background()
	c := loadSpec(t, haSpec)
	k1 := testKeyring()
	k2 := pki.Keyring{FormatVersion: 1, Keys: []pki.EncryptionKey{k1.Keys[0], {Name: "key2", Serial: 2, Provider: "secretbox", Secret: bytes.Repeat([]byte{2}, 32)}}}
	promoted := k2
	promoted.Keys = slices.Clone(k2.Keys)
	k2.Keys[1].State = pki.KeyStaged
	promoted.Keys[0].State, promoted.Keys[1].State = pki.KeyRetired, pki.KeyWrite
	dropped := pki.Keyring{FormatVersion: 1, Keys: []pki.EncryptionKey{promoted.Keys[1]}}

	desiredFor := func(r pki.Keyring) Desired {
		f, err := encryptionConfig(r)
		if err != nil {
			t.Fatal(err)
		}
		return Desired{Component: bundle.KubeAPIServer, Config: []File{f}}
	}
	installedJSON := func(r pki.Keyring) []byte {
		b, err := Installed{FormatVersion: InstalledFormat, Components: map[string]InstalledComponent{bundle.KubeAPIServer: observed(t, &r)}}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type world struct {
		before  map[string]pki.Keyring // what each host ran when the plan was made
		nowCP2  pki.Keyring            // what cp-2 runs when cp-1 changes
		desired pki.Keyring
	}
	run := func(w world, hook string) (cp1, cp2 *recHost) {
		cp1, cp2 = &recHost{name: "cp-1"}, &recHost{name: "cp-2", installed: installedJSON(w.nowCP2)}
		hosts := map[string]Host{"cp-1": cp1, "cp-2": cp2}
		inst := map[string]Installed{}
		for h, r := range w.before {
			inst[h] = Installed{Components: map[string]InstalledComponent{bundle.KubeAPIServer: observed(t, &r)}}
		}
		env := &Env{Mode: plan.ModeApply, Cluster: c, Installed: inst, Logf: t.Logf,
			Host:    func(n string) (Host, bool) { h, ok := hosts[n]; return h, ok },
			Desired: func(string) (Desired, bool) { return desiredFor(w.desired), true }}
		ch := plan.Change{Address: plan.Address(Kind, bundle.KubeAPIServer, "cp-1"), Kind: Kind, Name: bundle.KubeAPIServer, Host: "cp-1", Action: plan.Update}
		var err error
		switch hook {
		case "once":
			err = apiServerBeforeFirst(ctx, env, ch)
		case "around":
			err = apiServerAround(ctx, env, ch, func() error { return nil })
		}
		if err != nil {
			t.Fatal(err)
		}
		return cp1, cp2
	}
	all := func(r pki.Keyring) map[string]pki.Keyring { return map[string]pki.Keyring{"cp-1": r, "cp-2": r} }

	// Promotion, cp-1 first: cp-2 still writes with key1, so no rewrite.
	cp1, cp2 := run(world{before: all(k2), nowCP2: k2, desired: promoted}, "around")
	if cp1.rewrites()+cp2.rewrites() != 0 {
		t.Error("rewrote while cp-2 still writes with the old key")
	}
	// Promotion, cp-1 last: cp-2 writes with key2 already: rewrite on cp-1.
	cp1, _ = run(world{before: map[string]pki.Keyring{"cp-1": k2, "cp-2": promoted}, nowCP2: promoted, desired: promoted}, "around")
	if cp1.rewrites() != 1 {
		t.Errorf("the last promotion rewrote %d times", cp1.rewrites())
	}
	// Staging changes no write key: nothing.
	cp1, _ = run(world{before: all(k1), nowCP2: k2, desired: k2}, "around")
	if cp1.rewrites() != 0 {
		t.Error("staging rewrote")
	}
	// Dropping key1: rewrite before the first API server changes.
	cp1, cp2 = run(world{before: all(promoted), nowCP2: promoted, desired: dropped}, "once")
	if cp1.rewrites()+cp2.rewrites() != 1 {
		t.Errorf("dropping a key rewrote %d times", cp1.rewrites()+cp2.rewrites())
	}
	// Promotion drops nothing: the Once hook does nothing.
	cp1, cp2 = run(world{before: all(k2), nowCP2: k2, desired: promoted}, "once")
	if cp1.rewrites()+cp2.rewrites() != 0 {
		t.Error("promotion rewrote before the change")
	}
	// An upgraded single control plane (plaintext before): rewrite after.
	single := loadSpec(t, testSpec)
	h := &recHost{name: "cp-1"}
	env := &Env{Mode: plan.ModeApply, Cluster: single, Logf: t.Logf,
		Installed: map[string]Installed{"cp-1": {Components: map[string]InstalledComponent{bundle.KubeAPIServer: observed(t, nil)}}},
		Host:      func(string) (Host, bool) { return h, true },
		Desired:   func(string) (Desired, bool) { return desiredFor(k1), true }}
	ch := plan.Change{Address: plan.Address(Kind, bundle.KubeAPIServer, "cp-1"), Kind: Kind, Name: bundle.KubeAPIServer, Host: "cp-1", Action: plan.Update}
	if err := apiServerAround(ctx, env, ch, func() error { return nil }); err != nil || h.rewrites() != 1 {
		t.Errorf("upgrade of one control plane: %v, %d rewrites", err, h.rewrites())
	}
	// A failed change rewrites nothing and fails.
	h = &recHost{name: "cp-1"}
	if err := apiServerAround(ctx, env, ch, func() error { return errors.New("gate") }); err == nil || h.rewrites() != 0 {
		t.Errorf("failed change: %v, %d rewrites", err, h.rewrites())
	}
}

// deploy/kube-bench/config.yaml names the paths this package writes: a
// renamed file or folder must not leave kube-bench looking at nothing.
func TestKubeBenchConfigMatchesLayout(t *testing.T) {
	b, err := os.ReadFile("../deploy/kube-bench/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	get := func(target, component, key string) string {
		c, _ := cfg[target][component].(map[string]any)
		s, _ := c[key].(string)
		return s
	}
	unit := func(comp string) string { return currentFile(comp, agent.UnitFile) }
	want := []struct{ target, component, key, path string }{
		{"master", "apiserver", "defaultconf", unit(bundle.KubeAPIServer)},
		{"master", "scheduler", "defaultconf", unit(bundle.KubeScheduler)},
		{"master", "controllermanager", "defaultconf", unit(bundle.KubeControllerManager)},
		{"master", "scheduler", "defaultkubeconfig", path.Join(pki.HostKubeDir, pki.KubeconfigScheduler)},
		{"master", "controllermanager", "defaultkubeconfig", path.Join(pki.HostKubeDir, pki.KubeconfigCM)},
		{"master", "etcd", "defaultconf", path.Join(ConfigRoot, bundle.Etcd)},
		{"master", "etcd", "defaultdatadir", EtcdDataDir},
		{"etcd", "etcd", "defaultdatadir", EtcdDataDir},
		{"node", "kubelet", "defaultconf", currentFile(bundle.Kubelet, "kubelet-config.yaml")},
		{"node", "kubelet", "defaultsvc", unit(bundle.Kubelet)},
		{"node", "kubelet", "defaultkubeconfig", KubeletConfFile},
		{"node", "kubelet", "defaultcafile", pki.HostPath(pki.IDClusterCA + ".crt")},
		{"node", "proxy", "defaultkubeconfig", path.Join(pki.HostKubeDir, pki.KubeconfigKubeProxy)},
		{"node", "proxy", "defaultconf", currentFile(bundle.KubeProxy, "kube-proxy-config.yaml")},
	}
	for _, w := range want {
		if got := get(w.target, w.component, w.key); got != w.path {
			t.Errorf("%s.%s.%s = %q, want %q", w.target, w.component, w.key, got, w.path)
		}
	}
	// The files themselves: what kube-bench checks is root's 0600.
	in := testInput(t, loadSpec(t, testSpec), labFacts)
	for _, f := range []struct{ comp, host, file string }{
		{bundle.Kubelet, "worker-1", "kubelet-config.yaml"}, {bundle.KubeProxy, "worker-1", "kube-proxy-config.yaml"},
	} {
		if m := configEntry(t, render(t, in, f.comp, f.host), f.file).Mode; m != 0o600 {
			t.Errorf("%s: mode %o", f.file, m)
		}
	}
}

// The user script, run with stand-in tools: it makes the group and the
// user with shadow's tools, or BusyBox's, leaves an existing user alone,
// and fails with a message where the host has neither.
func TestEnsureUsersScript(t *testing.T) {
	grep, err := exec.LookPath("grep")
	if err != nil {
		t.Skip(err)
	}
	script := ensureUsersScript([]SystemUser{{Name: "etcd", Home: "/var/lib/etcd"}})
	run := func(t *testing.T, tools []string, groups string, userExists bool) (string, error) {
		t.Helper()
		bin := t.TempDir()
		calls := path.Join(t.TempDir(), "calls")
		if err := os.Symlink(grep, path.Join(bin, "grep")); err != nil {
			t.Fatal(err)
		}
		idExit := "1"
		if userExists {
			idExit = "0"
		}
		stubs := map[string]string{"id": "exit " + idExit}
		for _, tool := range tools {
			stubs[tool] = `echo "` + tool + ` $*" >> ` + calls
		}
		for name, body := range stubs {
			if err := os.WriteFile(path.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		group := path.Join(t.TempDir(), "group")
		if err := os.WriteFile(group, []byte(groups), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sh", "-c", strings.ReplaceAll(script, "/etc/group", group))
		cmd.Env = []string{"PATH=" + bin}
		out, err := cmd.CombinedOutput()
		b, _ := os.ReadFile(calls)
		return string(b) + string(out), err
	}
	got, err := run(t, []string{"groupadd", "useradd"}, "root:x:0:\n", false)
	if err != nil || !strings.Contains(got, "groupadd --system etcd\n") ||
		!strings.Contains(got, "useradd --system --gid etcd --home-dir /var/lib/etcd --no-create-home --shell /sbin/nologin --comment clusterctl etcd etcd\n") {
		t.Errorf("shadow tools: %v\n%s", err, got)
	}
	got, err = run(t, []string{"addgroup", "adduser"}, "root:x:0:\n", false)
	if err != nil || !strings.Contains(got, "addgroup -S etcd\n") || !strings.Contains(got, "adduser -S -D -H -h /var/lib/etcd -s /sbin/nologin -G etcd etcd\n") {
		t.Errorf("BusyBox: %v\n%s", err, got)
	}
	got, err = run(t, []string{"groupadd", "useradd"}, "root:x:0:\netcd:x:998:\n", true)
	if err != nil || got != "" {
		t.Errorf("existing user and group: %v %q", err, got)
	}
	got, err = run(t, nil, "etcd:x:998:\n", false)
	if err == nil || !strings.Contains(got, "neither useradd nor adduser") {
		t.Errorf("no tools: %v %q", err, got)
	}
}

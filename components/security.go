package components

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/clusterctl/clusterctl/agent"
	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/pki"
	"github.com/clusterctl/clusterctl/plan"
	"github.com/clusterctl/clusterctl/spec"
)

// Hardening every cluster gets; docs/security.md explains each choice.

// TLS of every server clusterctl configures: TLS 1.2 or newer and, for
// 1.2, only ECDHE key exchange with AEAD ciphers (AES-GCM,
// ChaCha20-Poly1305). TLS 1.3's suites are fixed by Go and all strong.
// ECDSA suites serve clusterctl's own certificates (P-256); the RSA ones
// serve RSA certificates adopted from an earlier PKI (kubeadm).
const (
	TLSMinVersion     = "VersionTLS12" // kube-apiserver, controller-manager, scheduler, kubelet
	EtcdTLSMinVersion = "TLS1.2"       // etcd's spelling
)

var tlsCipherSuites = []string{
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
	"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
}

// TLSCipherSuites are the TLS 1.2 cipher suites every server accepts, in
// Go's names (which Kubernetes and etcd use).
func TLSCipherSuites() []string { return slices.Clone(tlsCipherSuites) }

// tlsArgs are the TLS flags of the Kubernetes servers.
func tlsArgs() map[string]string {
	return map[string]string{"tls-min-version": TLSMinVersion, "tls-cipher-suites": strings.Join(tlsCipherSuites, ",")}
}

// etcd runs as its own system user, which owns its data and its keys.
const (
	EtcdUser = "etcd"
	// EtcdTLSDir holds etcd's own copy of its CA certificate, serving and
	// peer pairs, owned by EtcdUser (0700, files 0600). /etc/kubernetes/pki
	// stays root's alone (CIS 1.1.19).
	EtcdTLSDir = "/etc/kubernetes/etcd-tls"
)

// SystemUser is a system user a component needs: no login, no password,
// a group of the same name, its home the folder it owns.
type SystemUser struct {
	Name string
	Home string
}

// ensureUsersScript creates the users that are missing: useradd where the
// host has it (shadow-utils), adduser where only BusyBox is there. A user
// that exists (from a distribution package) is used as it is; the group
// of its name is made if missing, since files are chowned user:user.
func ensureUsersScript(users []SystemUser) string {
	var b strings.Builder
	for _, u := range users {
		n, home := shellQuote(u.Name), shellQuote(u.Home)
		fmt.Fprintf(&b, `nologin=$(command -v nologin 2>/dev/null || echo /sbin/nologin)
if ! grep -q '^'%[1]s':' /etc/group; then
	if command -v groupadd >/dev/null 2>&1; then groupadd --system %[1]s
	elif command -v addgroup >/dev/null 2>&1; then addgroup -S %[1]s
	else echo "cannot create the group "%[1]s": neither groupadd nor addgroup is installed" >&2; exit 1; fi
fi
if ! id -u %[1]s >/dev/null 2>&1; then
	if command -v useradd >/dev/null 2>&1; then useradd --system --gid %[1]s --home-dir %[2]s --no-create-home --shell "$nologin" --comment "clusterctl "%[1]s %[1]s
	elif command -v adduser >/dev/null 2>&1; then adduser -S -D -H -h %[2]s -s "$nologin" -G %[1]s %[1]s
	else echo "cannot create the system user "%[1]s": neither useradd nor adduser is installed" >&2; exit 1; fi
fi
`, n, home)
	}
	return b.String()
}

// ownershipScript hands folders (recursively) and shared files to their
// owners. It runs on every install: cheap, and it
// hands over what a generation that ran as root wrote.
func ownershipScript(l Layout, dirs []Dir, files []File) string {
	var cmds []string
	for _, dir := range dirs {
		if dir.Owner != "" {
			cmds = append(cmds, "chown -R "+shellQuote(dir.Owner+":"+dir.Owner)+" "+shellQuote(l.Path(dir.Path)))
		}
	}
	owners := map[string][]string{}
	for _, f := range files {
		if f.Owner != "" {
			owners[f.Owner] = append(owners[f.Owner], l.Path(f.Path))
		}
	}
	for _, o := range slices.Sorted(maps.Keys(owners)) {
		cmds = append(cmds, "chown "+shellQuote(o+":"+o)+" "+shellJoin(owners[o]...))
	}
	return strings.Join(cmds, " && ")
}

// currentFile is where a generation file of a component's active
// generation is on the host: through the current link, so flags that name
// it are absolute (kube-bench reads them from the process list) and still
// follow a switch or a rollback.
func currentFile(component, name string) string {
	return path.Join(ConfigRoot, component, "current", name)
}

// Files of kube-apiserver's generation.
const (
	EncryptionConfigFile = "encryption-config.yaml"
	AuditPolicyFile      = "audit-policy.yaml"
)

// AuditLog is the API server's audit log; it keeps AuditLogMaxAge days in
// AuditLogMaxBackup files of AuditLogMaxSize MB (CIS 1.2.16-1.2.19), which
// extra_args may raise.
const (
	AuditLog          = LogDir + "/kube-apiserver-audit.log"
	AuditLogMaxAge    = 30
	AuditLogMaxBackup = 10
	AuditLogMaxSize   = 100
)

// auditPolicy logs who did what to which object for every request
// (Metadata), and the bodies of the changes that decide who may do what:
// RBAC, service accounts, namespaces (their Pod Security labels),
// admission webhooks, certificate signing requests, network policies, and
// pods (privileged containers, host mounts) — request and response for the
// first, the request for pods. Secrets, ConfigMaps, TokenReviews and token
// requests never get more than Metadata: their bodies are credentials.
// Left out are the read-only health and version probes, events, and the
// system components' constant reads and lease renewals.
//
// Rules are matched in order, the first one wins.
const auditPolicy = `# Audit policy written by clusterctl. The first matching rule decides.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - RequestReceived
rules:
  # Health, readiness and version probes: constant, read-only.
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version", "/version/"]
  # Events are the cluster's own log.
  - level: None
    resources:
      - group: ""
        resources: ["events"]
      - group: events.k8s.io
        resources: ["events"]
  # Leader election and node heartbeats renew leases every few seconds.
  - level: None
    verbs: ["get", "update"]
    resources:
      - group: coordination.k8s.io
        resources: ["leases"]
  # The system components' reads and watches.
  - level: None
    verbs: ["get", "list", "watch"]
    users: ["system:kube-controller-manager", "system:kube-scheduler", "system:kube-proxy", "system:apiserver"]
  - level: None
    verbs: ["get", "list", "watch"]
    userGroups: ["system:nodes"]
  # Credentials: who touched them, never their content.
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "configmaps", "serviceaccounts/token"]
      - group: authentication.k8s.io
        resources: ["tokenreviews"]
  # Changes to who may do what: the whole request and response.
  - level: RequestResponse
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
    resources:
      - group: rbac.authorization.k8s.io
      - group: ""
        resources: ["serviceaccounts", "namespaces"]
      - group: admissionregistration.k8s.io
      - group: certificates.k8s.io
      - group: networking.k8s.io
        resources: ["networkpolicies"]
  # Pods: what runs, with which privileges and mounts.
  - level: Request
    verbs: ["create", "update", "patch"]
    resources:
      - group: ""
        resources: ["pods", "pods/ephemeralcontainers"]
  # Everything else: who, what, when, and the answer's status.
  - level: Metadata
`

// keyring is the Secret encryption keyring of the PKI.
func (in Input) keyring() (pki.Keyring, error) {
	b, err := in.PKI.File(pki.KeyringFile)
	if err != nil {
		return pki.Keyring{}, fmt.Errorf("encryption keyring: %w", err)
	}
	return pki.ParseKeyring(b)
}

// encryptionConfig is kube-apiserver's EncryptionConfiguration for a
// keyring: a secret, so root only; the plan shows key names and providers,
// and each key's secret as (sensitive).
func encryptionConfig(r pki.Keyring) (File, error) {
	b, err := pki.RenderEncryptionConfig(r)
	if err != nil {
		return File{}, err
	}
	return File{Path: EncryptionConfigFile, Data: b, Mode: 0o600, SecretKeys: []string{"secret"}}, nil
}

// providerRE reads a provider order back from the plan attributes of an
// EncryptionConfiguration: "…providers[1].identity" or
// "…providers[0].secretbox.keys[2].name".
var providerRE = regexp.MustCompile(`^` + regexp.QuoteMeta(EncryptionConfigFile) + `:resources\[0\]\.providers\[(\d+)\]\.([a-z]+)(?:\.keys\[(\d+)\]\.name)?$`)

// providerOrder is the provider order (pki.Keyring.ProviderOrder) of the
// encryption configuration described by attrs, in document order; a
// configuration without providers is plaintext.
func providerOrder(attrs []plan.Attr) []string {
	var out []string
	for _, a := range attrs {
		m := providerRE.FindStringSubmatch(a.Name)
		switch {
		case m == nil:
		case m[2] == pki.Identity && m[3] == "":
			out = append(out, pki.Identity)
		case m[3] != "":
			out = append(out, m[2]+"/"+a.Value)
		}
	}
	if len(out) == 0 {
		return []string{pki.Identity}
	}
	return out
}

// observedOrder is the provider order an installed kube-apiserver runs
// with. ok is false when its record cannot tell (written by a clusterctl
// that did not record file attributes, yet with encryption on).
func observedOrder(ic InstalledComponent) (order []string, ok bool) {
	if ic.FileAttrs != nil && ic.FileAttrs.Version == FileAttrsVersion {
		return providerOrder(ic.FileAttrs.Attrs), true
	}
	if !hasArg(ic.Args, "--encryption-provider-config") {
		return []string{pki.Identity}, true
	}
	return nil, false
}

// desiredOrder is the provider order a desired kube-apiserver runs with.
func desiredOrder(d Desired) ([]string, bool) {
	for _, f := range d.Config {
		if f.Path == EncryptionConfigFile {
			return providerOrder(FileAttrList(f)), true
		}
	}
	return nil, false
}

func hasArg(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// keyringRolledOut reports whether every control plane of the spec runs an
// API server with r's configuration (its file attributes as recorded in
// installed.json: names, providers and secret digests).
func keyringRolledOut(c *spec.Cluster, installed map[string]Installed, r pki.Keyring) (bool, error) {
	f, err := encryptionConfig(r)
	if err != nil {
		return false, err
	}
	want := FileAttrList(f)
	cps := c.HostsRunning(bundle.KubeAPIServer)
	if len(cps) == 0 {
		return false, nil
	}
	for _, h := range cps {
		ic, ok := installed[h.Name].Components[bundle.KubeAPIServer]
		if !ok || ic.FileAttrs == nil || ic.FileAttrs.Version != FileAttrsVersion {
			return false, nil
		}
		var have []plan.Attr
		for _, a := range ic.FileAttrs.Attrs {
			if strings.HasPrefix(a.Name, EncryptionConfigFile+":") {
				have = append(have, a)
			}
		}
		if !slices.EqualFunc(want, have, func(a, b plan.Attr) bool { return a.Name == b.Name && a.Value == b.Value }) {
			return false, nil
		}
	}
	return true, nil
}

// ErrKeyringLost means the API servers encrypt Secrets with keys that
// neither the local state nor any control plane has: a new key would make
// every Secret unreadable, so nothing is planned.
var ErrKeyringLost = errors.New("the Secret encryption keyring is lost")

// KeyringPlan is what planning the keyring did.
type KeyringPlan struct {
	Changes  []plan.Change // kind "cert", name "encryption/<key>"
	Note     string        // for the plan's warnings: what the keyring waits for
	Restored string        // the control plane the keyring was restored from
}

// ReadHostFile reads an absolute path on a host of the spec.
type ReadHostFile func(ctx context.Context, host, path string) ([]byte, error)

// PlanKeyring moves the encryption keyring in store one step towards the
// spec (pki.NextKeyring) and says what changed. A lost local keyring is
// restored from a control plane's copy first; a cluster whose API servers
// run without encryption (made by an earlier clusterctl) starts from
// plaintext. store is the plan's overlay: nothing is saved before apply.
func PlanKeyring(ctx context.Context, store pki.Store, c *spec.Cluster, installed map[string]Installed, read ReadHostFile) (KeyringPlan, error) {
	var kp KeyringPlan
	cps := c.HostsRunning(bundle.KubeAPIServer)
	var cur *pki.Keyring
	b, err := store.Read(pki.KeyringFile)
	switch {
	case err == nil:
		r, err := pki.ParseKeyring(b)
		if err != nil {
			return kp, err
		}
		cur = &r
	case !errors.Is(err, fs.ErrNotExist):
		return kp, fmt.Errorf("encryption keyring: %w", err)
	}
	running, encrypted := 0, []string{}
	for _, h := range cps {
		ic, ok := installed[h.Name].Components[bundle.KubeAPIServer]
		if !ok {
			continue
		}
		running++
		if hasArg(ic.Args, "--encryption-provider-config") {
			encrypted = append(encrypted, h.Name)
		}
	}
	if cur == nil && running > 0 && read != nil {
		for _, h := range cps {
			if _, ok := installed[h.Name].Components[bundle.KubeAPIServer]; !ok {
				continue
			}
			b, err := read(ctx, h.Name, pki.HostPath(pki.KeyringFile))
			if err != nil {
				continue // not there (an earlier clusterctl), or the host cannot say: try the next
			}
			r, err := pki.ParseKeyring(b)
			if err != nil {
				return kp, fmt.Errorf("restore the encryption keyring from %s: %w", h.Name, err)
			}
			if err := store.Write(pki.KeyringFile, b, pki.ModeKey); err != nil {
				return kp, err
			}
			cur, kp.Restored = &r, h.Name
			break
		}
	}
	if cur == nil && len(encrypted) > 0 {
		return kp, fmt.Errorf("%w: kube-apiserver on %s encrypts Secrets, but %s is neither in the local state nor on a control plane; restore it from a backup of .clusterctl/pki",
			ErrKeyringLost, strings.Join(encrypted, ", "), pki.KeyringFile)
	}
	sec := c.Security()
	g := pki.KeyringGoal{Provider: sec.EncryptionProvider, Serial: sec.EncryptionKeySerial, ControlPlanes: len(cps),
		Plaintext: running > 0}
	if cur != nil {
		if g.RolledOut, err = keyringRolledOut(c, installed, *cur); err != nil {
			return kp, err
		}
	}
	next, changes, err := pki.NextKeyring(cur, g)
	if err != nil {
		return kp, fmt.Errorf("encryption keyring: %w", err)
	}
	if len(changes) == 0 {
		kp.Note = pki.KeyringNote(next, g)
		return kp, nil
	}
	out, err := next.Marshal()
	if err != nil {
		return kp, err
	}
	if err := store.Write(pki.KeyringFile, out, pki.ModeKey); err != nil {
		return kp, err
	}
	for _, ch := range changes {
		name := "encryption/" + ch.Key
		pc := plan.Change{Address: plan.Address("cert", name, ""), Kind: "cert", Name: name, Reason: ch.Reason, Action: plan.Update}
		switch ch.Action {
		case "create":
			pc.Action = plan.Create
		case "delete":
			pc.Action = plan.Delete
		}
		kp.Changes = append(kp.Changes, pc)
	}
	return kp, nil
}

// dropsKey reports whether going from have to want leaves out a key (not
// identity, which every configuration ends with).
func dropsKey(have, want []string) bool {
	for _, p := range have {
		if p != pki.Identity && !slices.Contains(want, p) {
			return true
		}
	}
	return false
}

// apiServerBeforeFirst: before the first API server forgets a key, every
// Secret is rewritten, so that none is left that only that key decrypts.
// It runs when any control plane still has a key the new configuration
// lacks (or cannot tell); every API server then writes with the new write
// key already (the keyring only removes keys once that is rolled out).
func apiServerBeforeFirst(ctx context.Context, env *Env, ch plan.Change) error {
	if env.Mode != plan.ModeApply || ch.Action == plan.Delete || env.Desired == nil {
		return nil
	}
	d, ok := env.Desired(ch.Address)
	if !ok {
		return nil
	}
	want, ok := desiredOrder(d)
	if !ok {
		return nil
	}
	var dropping []string
	for _, h := range env.Cluster.HostsRunning(bundle.KubeAPIServer) {
		ic, ok := env.Installed[h.Name].Components[bundle.KubeAPIServer]
		if !ok {
			continue
		}
		if have, known := observedOrder(ic); !known || dropsKey(have, want) {
			dropping = append(dropping, h.Name)
		}
	}
	if len(dropping) == 0 {
		return nil
	}
	cp, err := runningControlPlane(env, dropping)
	if err != nil {
		return fmt.Errorf("kube-apiserver not changed: every Secret must be rewritten before a key is removed: %w", err)
	}
	env.Logf("  %s: rewriting every Secret with the write key %s before a key is removed", cp.Name(), want[0])
	msg, err := RewriteSecrets(ctx, cp)
	if err != nil {
		return fmt.Errorf("kube-apiserver not changed: rewriting the Secrets before a key is removed failed (they stay readable with it): %w", err)
	}
	env.Logf("  %s: %s", cp.Name(), msg)
	return nil
}

// runningControlPlane is a connected control plane among names, whose API
// server runs.
func runningControlPlane(env *Env, names []string) (Host, error) {
	for _, n := range names {
		if h, ok := env.Host(n); ok {
			return h, nil
		}
	}
	return nil, fmt.Errorf("none of %s is connected", strings.Join(names, ", "))
}

// apiServerAround: once every API server writes with a new write key (the
// change that made the last of them do so), every Secret is rewritten with
// it, so that none stays in plaintext or under the old key. A rewrite that
// fails is reported and retried before the old key is removed
// (apiServerBeforeFirst); the API server change itself succeeded.
func apiServerAround(ctx context.Context, env *Env, ch plan.Change, do func() error) error {
	if err := do(); err != nil {
		return err
	}
	if env.Mode != plan.ModeApply || ch.Action == plan.Delete || env.Desired == nil {
		return nil
	}
	d, ok := env.Desired(ch.Address)
	if !ok {
		return nil
	}
	want, ok := desiredOrder(d)
	if !ok || want[0] == pki.Identity {
		return nil
	}
	ic, ok := env.Installed[ch.Host].Components[bundle.KubeAPIServer]
	if !ok {
		return nil // a new API server: it stored nothing yet, and changes no one's write key
	}
	if before, known := observedOrder(ic); known && before[0] == want[0] {
		return nil // the write key did not change here
	}
	for _, h := range env.Cluster.HostsRunning(bundle.KubeAPIServer) {
		if h.Name == ch.Host {
			continue
		}
		conn, ok := env.Host(h.Name)
		if !ok {
			env.Logf("  %s: not connected; Secrets are rewritten with %s by a later apply", h.Name, want[0])
			return nil
		}
		inst, err := readInstalled(ctx, conn)
		if err != nil {
			env.Logf("  %s: %v; Secrets are rewritten with %s by a later apply", h.Name, err, want[0])
			return nil
		}
		if have, known := observedOrder(inst.Components[bundle.KubeAPIServer]); !known || have[0] != want[0] {
			return nil // not every API server writes with it yet: a later change rewrites
		}
	}
	cp, ok := env.Host(ch.Host)
	if !ok {
		return nil
	}
	env.Logf("  %s: every API server writes with %s: rewriting every Secret with it", ch.Host, want[0])
	msg, err := RewriteSecrets(ctx, cp)
	if err != nil {
		env.Logf("  %s: WARNING: rewriting the Secrets failed, they stay readable and are rewritten before the old key is removed: %v", ch.Host, err)
		return nil
	}
	env.Logf("  %s: %s", ch.Host, msg)
	return nil
}

// RewriteSecrets writes every Secret back unchanged through a control
// plane's API server, which stores each with its current write key.
func RewriteSecrets(ctx context.Context, cp Host) (string, error) {
	resp, err := AgentClient{cp}.Call(ctx, agent.Request{Op: agent.OpRewriteSecrets, Kubeconfig: path.Join(pki.HostKubeDir, pki.KubeconfigAdmin)})
	if err != nil {
		return "", fmt.Errorf("rewrite Secrets: %w", err)
	}
	return strings.Join(resp.Log, "; "), nil
}

// etcdTLS are etcd's own copies of its certificates in EtcdTLSDir, owned
// by EtcdUser, and the flags naming them.
func etcdTLS(in Input, member string) ([]File, map[string]string, error) {
	copies := []struct{ from, to string }{
		{"etcd/ca.crt", "ca.crt"},
		{pki.IDEtcdServer(member) + ".crt", "server.crt"},
		{pki.IDEtcdServer(member) + ".key", "server.key"},
		{pki.IDEtcdPeer(member) + ".crt", "peer.crt"},
		{pki.IDEtcdPeer(member) + ".key", "peer.key"},
	}
	var files []File
	for _, c := range copies {
		data, err := in.PKI.File(c.from)
		if err != nil {
			return nil, nil, fmt.Errorf("pki %s: %w", c.from, err)
		}
		files = append(files, File{Path: path.Join(EtcdTLSDir, c.to), Data: data, Mode: 0o600,
			Sensitive: path.Ext(c.to) == ".key", Owner: EtcdUser})
	}
	t := func(name string) string { return path.Join(EtcdTLSDir, name) }
	args := map[string]string{
		"trusted-ca-file":      t("ca.crt"),
		"cert-file":            t("server.crt"),
		"key-file":             t("server.key"),
		"peer-trusted-ca-file": t("ca.crt"),
		"peer-cert-file":       t("peer.crt"),
		"peer-key-file":        t("peer.key"),
		"cipher-suites":        strings.Join(tlsCipherSuites, ","),
		"tls-min-version":      EtcdTLSMinVersion,
	}
	return files, args, nil
}

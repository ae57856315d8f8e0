package spec

import (
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/spec/skew"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Defaults of the spec language (docs/spec.md lists them for users).
const (
	defaultPodCIDR        = "10.244.0.0/16"
	defaultServiceCIDR    = "10.96.0.0/12"
	defaultSSHUser        = "root"
	defaultSSHPort        = 22
	defaultKnownHosts     = "~/.ssh/known_hosts"
	defaultConnectTimeout = 10 * time.Second
	clusterDNSIndex       = 10 // cluster_dns defaults to this address of service_cidr
)

// builder decodes the blocks of a merged spec body into a Cluster,
// validating as it goes.
type builder struct {
	*decoder
	baseDir   string
	in        VarInputs
	firstFile string
	sudoSet   bool      // the cluster-wide ssh block sets sudo
	kvRange   hcl.Range // kubernetes_version, where defaulted versions come from
	rawHosts  []*rawHost
	podRange  hcl.Range // pod_cidr, or the cluster block when defaulted
}

type rawSSH struct {
	declRange       hcl.Range
	user            strField
	port            intField
	identityFiles   listField
	useAgent        boolField
	knownHostsFile  strField
	hostKeyPolicy   strField
	sudo            boolField
	sudoPasswordEnv strField
	passphraseEnv   strField
	connectTimeout  strField
	timeout         time.Duration
	bastion         *rawBastion
}

type rawBastion struct {
	declRange hcl.Range
	address   strField
	user      strField
	port      intField
}

type rawHost struct {
	name      string
	labelRng  hcl.Range
	declRange hcl.Range
	address   strField
	internal  strField
	port      intField
	user      strField
	roles     listField
	labels    mapField
	taints    listField
	ssh       *rawSSH
}

type rawComponent struct {
	name      string
	labelRng  hcl.Range
	declRange hcl.Range
	version   strField
	extraArgs mapField
	hosts     listField
}

func build(specFiles []*hcl.File, varFiles []varFile, in VarInputs, baseDir string) (*Cluster, hcl.Diagnostics) {
	content, diags := hcl.MergeFiles(specFiles).Content(rootSchema())
	blocks := map[string]hcl.Blocks{}
	for _, b := range content.Blocks {
		blocks[b.Type] = append(blocks[b.Type], b)
	}

	decls, ddiags := decodeVariables(blocks["variable"])
	diags = append(diags, ddiags...)
	if ddiags.HasErrors() {
		return nil, diags
	}
	variables, varObj, vdiags := resolveVariables(decls, varFiles, in)
	diags = append(diags, vdiags...)
	if vdiags.HasErrors() {
		return nil, diags
	}
	varNames := map[string]bool{}
	for _, d := range decls {
		varNames[d.name] = true
	}
	localObj, ldiags := evalLocals(blocks["locals"], varObj, varNames)
	diags = append(diags, ldiags...)
	if ldiags.HasErrors() {
		return nil, diags
	}
	localNames := map[string]bool{}
	for n := range localObj.Type().AttributeTypes() {
		localNames[n] = true
	}

	b := &builder{
		decoder: &decoder{
			ctx:     &hcl.EvalContext{Variables: map[string]cty.Value{"var": varObj, "local": localObj}, Functions: functions()},
			vars:    varNames,
			locals:  localNames,
			varInfo: map[string]Variable{},
		},
		baseDir:   baseDir,
		in:        in,
		firstFile: specFiles[0].Body.MissingItemRange().Filename,
	}
	for _, v := range variables {
		b.varInfo[v.Name] = v
	}
	c := &Cluster{variables: variables}
	for _, f := range specFiles {
		c.files = append(c.files, f.Body.MissingItemRange().Filename)
	}
	b.cluster(c, blocks["cluster"])
	b.globalSSH(c, blocks["ssh"])
	b.hosts(c, blocks["host"])
	raws := b.components(c, blocks["component"])
	b.addons(c, blocks["addon"])
	b.images(c, blocks["image"])
	b.registries(c, blocks["registry"])
	b.artifacts(c, blocks["artifacts"])
	b.security(c, blocks["security"]) // security.go
	b.crossChecks(c, raws)
	return c, append(diags, b.diags...)
}

// fileDir is the folder relative paths in file resolve against.
func (b *builder) fileDir(file string) string { return filepath.Join(b.baseDir, filepath.Dir(file)) }

// path resolves a path written in file: "~" is $HOME, relative paths are
// relative to the file's folder.
func (b *builder) path(p, file string) string {
	home := b.in.getenv("HOME")
	switch {
	case p == "~" && home != "":
		return home
	case strings.HasPrefix(p, "~/") && home != "":
		return filepath.Join(home, p[2:])
	case strings.HasPrefix(p, "~"):
		return p
	case filepath.IsAbs(p):
		return filepath.Clean(p)
	}
	return filepath.Join(b.fileDir(file), p)
}

// notNull reports a required attribute written as null (the schema only
// checks that it is present); f is its decoded field.
func (b *builder) notNull(attrs hcl.Attributes, name string, f field) {
	if a := attrs[name]; a != nil && !f.set && f.rng.Filename == "" {
		b.errorf(a.Expr.Range().Ptr(), "Missing value for "+name, "%s is required; it must not be null.", name)
	}
}

// onlyOne reports a second block of a singleton type and returns the first.
func (b *builder) onlyOne(blocks hcl.Blocks, what string) *hcl.Block {
	for _, extra := range blocks[min(1, len(blocks)):] {
		b.errorf(extra.DefRange.Ptr(), "Duplicate "+what+" block", "%s %s block was already defined at %s. A spec has one %s block; the files of a folder are merged, so keep it in one file.", article(what), what, at(blocks[0].DefRange), what)
	}
	if len(blocks) == 0 {
		return nil
	}
	return blocks[0]
}

func (b *builder) cluster(c *Cluster, blocks hcl.Blocks) {
	blk := b.onlyOne(blocks, "cluster")
	if blk == nil {
		start := hcl.Range{Filename: b.firstFile, Start: hcl.InitialPos, End: hcl.InitialPos}
		b.errorf(&start, "Missing cluster block", "The spec needs a cluster block, for example:\n\n  cluster \"prod\" {\n    kubernetes_version = %q\n  }", bundle.Latest().Kubernetes)
		return
	}
	c.name, c.declRange = blk.Labels[0], blk.DefRange
	if err := CheckClusterName(c.name); err != nil {
		b.errorf(blk.LabelRanges[0].Ptr(), "Invalid cluster name", "The %s.", err)
	}
	content, diags := blk.Body.Content(clusterSchema())
	b.diags = append(b.diags, diags...)
	attrs := content.Attributes

	kv := b.str(attrs, "kubernetes_version")
	b.notNull(attrs, "kubernetes_version", kv.field)
	if kv.set {
		b.kvRange = kv.rng
		if v, err := skew.Parse(kv.v); err != nil {
			b.valueErr(kv.field, "Invalid version", "kubernetes_version: %s.", versionError(kv.field, err))
		} else if err := checkRelease(kv.v); err != nil {
			b.valueErr(kv.field, "Invalid version", "kubernetes_version: %s.", versionError(kv.field, err))
		} else if rel, err := bundle.ReleaseFor(v.String()); err != nil {
			b.valueErr(kv.field, "Unsupported Kubernetes version", "kubernetes_version %s is not one clusterctl ships: supported versions are %s.", kv.show(kv.v), strings.Join(supportedKubernetes(), ", "))
		} else {
			c.kubernetesVersion, c.release = v.String(), rel
		}
	}
	pod, svc := b.str(attrs, "pod_cidr"), b.str(attrs, "service_cidr")
	c.podCIDR = b.prefix(pod, defaultPodCIDR)
	c.serviceCIDR = b.prefix(svc, defaultServiceCIDR)
	b.podRange = blk.DefRange
	if pod.set {
		b.podRange = pod.rng
	}
	if c.podCIDR.IsValid() && c.serviceCIDR.IsValid() {
		switch {
		case c.podCIDR.Addr().Is4() != c.serviceCIDR.Addr().Is4():
			b.firstFieldErr(blk.DefRange, []field{svc.field, pod.field}, "Mixed address families", "pod_cidr %s and service_cidr %s must both be IPv4 or both IPv6; dual-stack clusters are not supported.", c.podCIDR, c.serviceCIDR)
		case c.podCIDR.Overlaps(c.serviceCIDR):
			b.firstFieldErr(blk.DefRange, []field{svc.field, pod.field}, "Overlapping CIDRs", "pod_cidr %s and service_cidr %s overlap. Pod and Service addresses must come from separate ranges.", c.podCIDR, c.serviceCIDR)
		}
	}
	if c.serviceCIDR.IsValid() {
		minBits := 12 // kube-apiserver refuses larger IPv4 service ranges
		if c.serviceCIDR.Addr().Is6() {
			minBits = 108
		}
		switch {
		case c.serviceCIDR.Bits() < minBits:
			b.firstFieldErr(blk.DefRange, []field{svc.field}, "Service CIDR too large", "service_cidr %s is larger than kube-apiserver accepts: the prefix length must be at least /%d.", c.serviceCIDR, minBits)
		case c.serviceCIDR.Addr().BitLen()-c.serviceCIDR.Bits() < 4:
			b.firstFieldErr(blk.DefRange, []field{svc.field}, "Service CIDR too small", "service_cidr %s must hold at least 16 addresses: the kubernetes Service, cluster_dns and the Services you create.", c.serviceCIDR)
		}
	}

	dns := b.str(attrs, "cluster_dns")
	if dns.set {
		a, err := netip.ParseAddr(dns.v)
		switch {
		case err != nil:
			b.valueErr(dns.field, "Invalid IP address", "cluster_dns %s is not an IP address.", dns.show(dns.v))
		case c.serviceCIDR.IsValid() && !c.serviceCIDR.Contains(a):
			b.valueErr(dns.field, "cluster_dns outside service_cidr", "cluster_dns %s is not inside service_cidr %s: the DNS Service's cluster IP comes from the Service range.", a, c.serviceCIDR)
		case c.serviceCIDR.IsValid() && (a == c.serviceCIDR.Addr() || a == c.serviceCIDR.Addr().Next()):
			b.valueErr(dns.field, "Reserved cluster_dns address", "cluster_dns %s is reserved: the first address of service_cidr is the network and the second is the kubernetes Service.", a)
		default:
			c.clusterDNS = a
		}
	} else if c.serviceCIDR.IsValid() && c.serviceCIDR.Addr().BitLen()-c.serviceCIDR.Bits() >= 4 {
		a, _ := nthAddr(c.serviceCIDR, big.NewInt(clusterDNSIndex))
		c.clusterDNS = a
	}

	c.upgrade = defaultUpgrade()
	for i, ub := range content.Blocks {
		if i > 0 {
			b.errorf(ub.DefRange.Ptr(), "Duplicate upgrade block", "An upgrade block was already defined at %s.", at(content.Blocks[0].DefRange))
			continue
		}
		b.upgrade(c, ub)
	}

	if ep := b.str(attrs, "api_endpoint"); ep.set {
		if err := checkEndpoint(ep.v); err != nil {
			b.valueErr(ep.field, "Invalid api_endpoint", "api_endpoint %s: %s. Write a host name or IP, optionally with a port: \"k8s.example.com:6443\".", ep.show(ep.v), err)
		} else {
			c.apiEndpoint = ep.v
		}
	}
}

// versionError explains a malformed version without showing a sensitive one.
func versionError(f field, err error) string {
	if f.sensitive {
		return "the (sensitive) value is not a version: want MAJOR.MINOR.PATCH"
	}
	return err.Error()
}

// article is "a" or "an" for word.
func article(word string) string {
	if strings.ContainsRune("aeiou", rune(word[0])) || strings.HasPrefix(word, "ssh") {
		return "An"
	}
	return "A"
}

func supportedKubernetes() []string {
	var out []string
	for _, r := range bundle.Releases() {
		out = append(out, r.Kubernetes)
	}
	return out
}

// firstFieldErr reports an error about the first of fields that was
// written, or at def when none was.
func (b *builder) firstFieldErr(def hcl.Range, fields []field, summary, format string, args ...any) {
	for _, f := range fields {
		if f.set {
			b.valueErr(f, summary, format, args...)
			return
		}
	}
	b.errorf(&def, summary, format, args...)
}

// prefix checks a CIDR attribute, or returns its default when it is not
// written.
func (b *builder) prefix(f strField, def string) netip.Prefix {
	name := f.name
	if !f.set {
		if f.rng.Filename != "" { // written but failed to decode
			return netip.Prefix{}
		}
		return netip.MustParsePrefix(def)
	}
	p, err := netip.ParsePrefix(f.v)
	if err != nil {
		b.valueErr(f.field, "Invalid CIDR", "%s %s is not a CIDR range such as %q.", name, f.show(f.v), def)
		return netip.Prefix{}
	}
	if p.Addr().Zone() != "" || p.Addr().Is4In6() {
		b.valueErr(f.field, "Invalid CIDR", "%s %s must be a plain IPv4 or IPv6 range.", name, f.show(f.v))
		return netip.Prefix{}
	}
	if p != p.Masked() {
		b.valueErr(f.field, "Invalid CIDR", "%s %s has bits set after the prefix length; the range it names is %s.", name, f.show(f.v), p.Masked())
		return netip.Prefix{}
	}
	return p
}

// checkEndpoint accepts "host" or "host:port" with host a name or IP.
func checkEndpoint(s string) error {
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.Count(s, ":") == 1 || strings.HasPrefix(s, "[") {
		return fmt.Errorf("%v", err)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q must be a number from 1 to 65535", port)
		}
	}
	if _, err := netip.ParseAddr(host); err != nil && !hostname(host) {
		return fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return nil
}

// globalSSH decodes the cluster-wide ssh block and sets c.ssh.
func (b *builder) globalSSH(c *Cluster, blocks hcl.Blocks) {
	var raw *rawSSH
	if blk := b.onlyOne(blocks, "ssh"); blk != nil {
		raw = b.decodeSSH(blk)
	}
	c.ssh, b.sudoSet = b.mergeSSH(b.defaultSSH(), false, raw, nil)
	b.checkSSH(c.ssh, raw)
}

// checkSSH warns about settings that cannot work together.
func (b *builder) checkSSH(s SSH, raw *rawSSH) {
	if raw == nil {
		return
	}
	if e := raw.sudoPasswordEnv; e.set && !s.Sudo {
		b.warnf(&e.rng, "sudo_password_env without sudo", "sudo_password_env is set but sudo is off for user %q, so the password is never used.", s.User)
	}
	if raw.useAgent.set && !raw.useAgent.v && len(s.IdentityFiles) == 0 {
		b.warnf(&raw.useAgent.rng, "No SSH authentication", "use_agent is false and identity_files is empty, so clusterctl has no key to log in with.")
	}
}

func (b *builder) defaultSSH() SSH {
	return SSH{
		User:           defaultSSHUser,
		Port:           defaultSSHPort,
		IdentityFiles:  []string{},
		UseAgent:       b.in.getenv("SSH_AUTH_SOCK") != "",
		KnownHostsFile: b.path(defaultKnownHosts, ""),
		HostKeyPolicy:  HostKeyStrict,
		ConnectTimeout: defaultConnectTimeout,
	}
}

func (b *builder) decodeSSH(blk *hcl.Block) *rawSSH {
	content, diags := blk.Body.Content(sshSchema())
	b.diags = append(b.diags, diags...)
	a := content.Attributes
	r := &rawSSH{
		declRange:       blk.DefRange,
		user:            b.str(a, "user"),
		port:            b.integer(a, "port", 1, 65535),
		identityFiles:   b.list(a, "identity_files"),
		useAgent:        b.boolean(a, "use_agent"),
		knownHostsFile:  b.str(a, "known_hosts_file"),
		hostKeyPolicy:   b.str(a, "host_key_policy"),
		sudo:            b.boolean(a, "sudo"),
		sudoPasswordEnv: b.str(a, "sudo_password_env"),
		passphraseEnv:   b.str(a, "identity_passphrase_env"),
		connectTimeout:  b.str(a, "connect_timeout"),
	}
	if u := r.user; u.set {
		b.checkUser(u)
	}
	for i, p := range r.identityFiles.v {
		if strings.TrimSpace(p) == "" {
			b.errorf(elemRange(r.identityFiles.expr, i).Ptr(), "Invalid identity file", "identity_files must not contain an empty path.")
		}
	}
	if k := r.knownHostsFile; k.set && strings.TrimSpace(k.v) == "" {
		b.valueErr(k.field, "Invalid known_hosts_file", "known_hosts_file must not be empty.")
	}
	if p := r.hostKeyPolicy; p.set && p.v != HostKeyStrict && p.v != HostKeyAcceptNew {
		b.valueErr(p.field, "Invalid host_key_policy", "host_key_policy %s is not one of %q and %q.%s", p.show(p.v), HostKeyStrict, HostKeyAcceptNew, suggest(p.v, []string{HostKeyStrict, HostKeyAcceptNew}))
	}
	if e := r.sudoPasswordEnv; e.set && !envName(e.v) {
		b.valueErr(e.field, "Invalid sudo_password_env", "sudo_password_env is the NAME of an environment variable that holds the password (letters, digits and '_'), not the password; got %s.", e.show(e.v))
	}
	if e := r.passphraseEnv; e.set && !envName(e.v) {
		b.valueErr(e.field, "Invalid identity_passphrase_env", "identity_passphrase_env is the NAME of an environment variable that holds the passphrase of the identity files (letters, digits and '_'), not the passphrase; got %s.", e.show(e.v))
	}
	if t := r.connectTimeout; t.set {
		d, err := time.ParseDuration(t.v)
		switch {
		case err != nil:
			b.valueErr(t.field, "Invalid duration", "connect_timeout %s is not a duration such as \"10s\" or \"1m30s\".", t.show(t.v))
		case d <= 0 || d > time.Hour:
			b.valueErr(t.field, "Invalid duration", "connect_timeout must be more than 0s and at most 1h; got %s.", d)
		default:
			r.timeout = d
		}
	}
	for i, bb := range content.Blocks {
		if i > 0 {
			b.errorf(bb.DefRange.Ptr(), "Duplicate bastion block", "A bastion block was already defined at %s.", at(content.Blocks[0].DefRange))
			continue
		}
		bc, diags := bb.Body.Content(bastionSchema())
		b.diags = append(b.diags, diags...)
		r.bastion = &rawBastion{
			declRange: bb.DefRange,
			address:   b.str(bc.Attributes, "address"),
			user:      b.str(bc.Attributes, "user"),
			port:      b.integer(bc.Attributes, "port", 1, 65535),
		}
		b.notNull(bc.Attributes, "address", r.bastion.address.field)
		if ad := r.bastion.address; ad.set {
			if _, err := netip.ParseAddr(ad.v); err != nil && !hostname(ad.v) {
				b.valueErr(ad.field, "Invalid address", "bastion address %s is neither an IP address nor a host name.", ad.show(ad.v))
			}
		}
		if u := r.bastion.user; u.set {
			b.checkUser(u)
		}
	}
	return r
}

func (b *builder) checkUser(u strField) {
	if u.v == "" || strings.ContainsAny(u.v, " \t\r\n:@/") {
		b.valueErr(u.field, "Invalid user", "%s %s is not a user name.", u.name, u.show(u.v))
	}
}

// mergeSSH applies the attributes of raw that were written over base.
// host carries host-level port and user, which win over the host's ssh
// block. sudoSet says whether base.Sudo was written; unless sudo is written
// somewhere, it follows the user: needed for anyone but root.
func (b *builder) mergeSSH(base SSH, sudoSet bool, raw *rawSSH, host *rawHost) (SSH, bool) {
	s := base.clone()
	if raw != nil {
		if raw.user.set {
			s.User = raw.user.v
		}
		if raw.port.set {
			s.Port = raw.port.v
		}
		if raw.identityFiles.set {
			s.IdentityFiles = []string{}
			for _, p := range raw.identityFiles.v {
				s.IdentityFiles = append(s.IdentityFiles, b.path(p, raw.identityFiles.rng.Filename))
			}
		}
		if raw.useAgent.set {
			s.UseAgent = raw.useAgent.v
		}
		if raw.knownHostsFile.set {
			s.KnownHostsFile = b.path(raw.knownHostsFile.v, raw.knownHostsFile.rng.Filename)
		}
		if raw.hostKeyPolicy.set {
			s.HostKeyPolicy = raw.hostKeyPolicy.v
		}
		if raw.sudo.set {
			s.Sudo, sudoSet = raw.sudo.v, true
		}
		if raw.sudoPasswordEnv.set {
			s.SudoPasswordEnv = raw.sudoPasswordEnv.v
		}
		if raw.passphraseEnv.set {
			s.PassphraseEnv = raw.passphraseEnv.v
		}
		if raw.timeout > 0 {
			s.ConnectTimeout = raw.timeout
		}
	}
	if host != nil {
		if host.user.set {
			s.User = host.user.v
		}
		if host.port.set {
			s.Port = host.port.v
		}
	}
	if !sudoSet {
		s.Sudo = s.User != "root"
	}
	if raw != nil && raw.bastion != nil {
		// A bastion replaces the inherited one; its user defaults to the
		// user of the block it is written in.
		s.Bastion = Bastion{Address: raw.bastion.address.v, User: raw.bastion.user.v, Port: raw.bastion.port.v}
		if s.Bastion.User == "" {
			s.Bastion.User = s.User
		}
		if s.Bastion.Port == 0 {
			s.Bastion.Port = defaultSSHPort
		}
	}
	return s, sudoSet
}

// upgrade decodes the cluster's upgrade block: how rollouts are paced and
// gated.
func (b *builder) upgrade(c *Cluster, blk *hcl.Block) {
	content, diags := blk.Body.Content(upgradeSchema())
	b.diags = append(b.diags, diags...)
	a := content.Attributes
	if n := b.integer(a, "worker_batch_size", 1, 1000); n.set {
		c.upgrade.WorkerBatchSize = n.v
	}
	if n := b.integer(a, "keep_generations", 1, 20); n.set {
		c.upgrade.KeepGenerations = n.v
	}
	if d := b.boolean(a, "drain"); d.set {
		c.upgrade.Drain = d.v
	}
	if d := b.boolean(a, "drain_force"); d.set {
		c.upgrade.DrainForce = d.v
	}
	if d := b.boolean(a, "drain_delete_emptydir_data"); d.set {
		c.upgrade.DrainDeleteEmptyDirData = d.v
	}
	duration := func(name string, dst *time.Duration) {
		f := b.str(a, name)
		if !f.set {
			return
		}
		d, err := time.ParseDuration(f.v)
		switch {
		case err != nil:
			b.valueErr(f.field, "Invalid duration", "%s %s is not a duration such as \"2m\" or \"90s\".", name, f.show(f.v))
		case d < time.Second || d > 24*time.Hour:
			b.valueErr(f.field, "Invalid duration", "%s must be between 1s and 24h; got %s.", name, d)
		default:
			*dst = d
		}
	}
	duration("drain_timeout", &c.upgrade.DrainTimeout)
	duration("gate_timeout", &c.upgrade.GateTimeout)
}

package spec

import (
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Encryption providers for Secrets at rest (the names kube-apiserver's
// EncryptionConfiguration uses).
const (
	EncryptionSecretbox = "secretbox"
	EncryptionAESCBC    = "aescbc"
)

// Defaults of the security block.
const (
	defaultEncryptionProvider = EncryptionSecretbox
	defaultPodPidsLimit       = 4096
	maxPodPidsLimit           = 4194304 // the kernel's highest pid_max
	minPodPidsLimit           = 64
)

// Security is the spec's `security` block with defaults applied: what
// clusterctl hardens beyond Kubernetes' defaults and lets a spec tune.
// Everything else of the hardening (TLS versions and cipher suites, the
// audit policy, etcd's user) is fixed; docs/security.md lists it.
type Security struct {
	// EncryptionProvider encrypts new Secret encryption keys:
	// EncryptionSecretbox (default) or EncryptionAESCBC.
	EncryptionProvider string
	// EncryptionKeySerial numbers the key Secrets are written with (1).
	// Raising it rotates the key: a new key is made and every Secret is
	// rewritten with it over the next applies; it is never lowered.
	EncryptionKeySerial int
	// PodPidsLimit is the kubelet's podPidsLimit: how many processes one
	// pod may have (4096; -1 means no limit).
	PodPidsLimit int
	// DeclRange is the security block; zero when the spec has none.
	DeclRange hcl.Range
	// SerialRange is encryption_key_serial, where a plan points when it
	// refuses the serial; the block (or nothing) when defaulted.
	SerialRange hcl.Range
}

func defaultSecurity() Security {
	return Security{EncryptionProvider: defaultEncryptionProvider, EncryptionKeySerial: 1, PodPidsLimit: defaultPodPidsLimit}
}

// Security is the cluster's security settings.
func (c *Cluster) Security() Security {
	if c.security == nil {
		return defaultSecurity()
	}
	return *c.security
}

func securitySchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "encryption_provider"},
		{Name: "encryption_key_serial"},
		{Name: "pod_pids_limit"},
	}}
}

// security decodes the top-level security block.
func (b *builder) security(c *Cluster, blocks hcl.Blocks) {
	s := defaultSecurity()
	c.security = &s
	blk := b.onlyOne(blocks, "security")
	if blk == nil {
		return
	}
	s.DeclRange, s.SerialRange = blk.DefRange, blk.DefRange
	content, diags := blk.Body.Content(securitySchema())
	b.diags = append(b.diags, diags...)
	a := content.Attributes
	providers := []string{EncryptionSecretbox, EncryptionAESCBC}
	if p := b.str(a, "encryption_provider"); p.set {
		if slices.Contains(providers, p.v) {
			s.EncryptionProvider = p.v
		} else {
			b.valueErr(p.field, "Invalid encryption_provider", "encryption_provider %s is not one clusterctl offers: use %s. (aesgcm is left out: its keys must be rotated every 200,000 writes; kms needs a plugin clusterctl does not install.)",
				p.show(p.v), strings.Join(quoteAll(providers), " or "))
		}
	}
	if n := b.integer(a, "encryption_key_serial", 1, 1_000_000); n.set {
		s.EncryptionKeySerial, s.SerialRange = n.v, n.rng
	}
	if n := b.integer(a, "pod_pids_limit", -1, maxPodPidsLimit); n.set {
		if n.v != -1 && n.v < minPodPidsLimit {
			b.valueErr(n.field, "Invalid pod_pids_limit", "pod_pids_limit must be -1 (no limit) or from %d to %d; got %d: a pod that cannot start a few processes cannot run.", minPodPidsLimit, maxPodPidsLimit, n.v)
		} else {
			s.PodPidsLimit = n.v
		}
	}
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = `"` + v + `"`
	}
	return out
}

package spec

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// taintEffects are the effects Kubernetes accepts.
func taintEffects() []string { return []string{"NoSchedule", "PreferNoSchedule", "NoExecute"} }

func (b *builder) decodeHost(blk *hcl.Block) *rawHost {
	content, diags := blk.Body.Content(hostSchema())
	b.diags = append(b.diags, diags...)
	a := content.Attributes
	h := &rawHost{
		name:      blk.Labels[0],
		labelRng:  blk.LabelRanges[0],
		declRange: blk.DefRange,
		address:   b.str(a, "address"),
		internal:  b.str(a, "internal_address"),
		port:      b.integer(a, "port", 1, 65535),
		user:      b.str(a, "user"),
		roles:     b.list(a, "roles"),
		labels:    b.strMap(a, "labels"),
		taints:    b.list(a, "taints"),
	}
	b.notNull(a, "address", h.address.field)
	b.notNull(a, "roles", h.roles.field)
	if h.user.set {
		b.checkUser(h.user)
	}
	for i, sb := range content.Blocks {
		if i > 0 {
			b.errorf(sb.DefRange.Ptr(), "Duplicate ssh block", "Host %q already has an ssh block at %s.", h.name, at(content.Blocks[0].DefRange))
			continue
		}
		h.ssh = b.decodeSSH(sb)
	}
	return h
}

// hosts decodes the host blocks in order and checks each on its own and
// against the hosts before it.
func (b *builder) hosts(c *Cluster, blocks hcl.Blocks) {
	byName := map[string]*rawHost{}
	byAddr := map[string]*rawHost{}
	byNodeAddr := map[netip.Addr]*rawHost{}
	for _, blk := range blocks {
		h := b.decodeHost(blk)
		if prev := byName[h.name]; prev != nil {
			b.errorf(&h.labelRng, "Duplicate host", "A host named %q was already defined at %s. Host names must be unique across all files.", h.name, at(prev.declRange))
			continue
		}
		byName[h.name] = h
		if problem := subdomainProblem(h.name); problem != "" {
			b.errorf(&h.labelRng, "Invalid host name", "Host name %s becomes the Kubernetes node name, so it must be a lower-case DNS name: %s.", quote(h.name), problem)
		}
		if h.ssh != nil {
			if h.port.set && h.ssh.port.set {
				b.valueErr(h.ssh.port.field, "Conflicting port", "Host %q sets port both directly (%s) and in its ssh block; keep one.", h.name, at(h.port.rng))
			}
			if h.user.set && h.ssh.user.set {
				b.valueErr(h.ssh.user.field, "Conflicting user", "Host %q sets user both directly (%s) and in its ssh block; keep one.", h.name, at(h.user.rng))
			}
		}
		sshCfg, _ := b.mergeSSH(c.ssh, b.sudoSet, h.ssh, h)
		b.checkSSH(sshCfg, h.ssh)

		host := Host{
			Name:         h.name,
			Address:      h.address.v,
			Port:         sshCfg.Port,
			User:         sshCfg.User,
			Labels:       map[string]string{},
			SSH:          sshCfg,
			DeclRange:    h.declRange,
			AddressRange: h.address.rng,
		}
		b.hostAddresses(c, h, &host, byAddr, byNodeAddr)
		host.Roles = b.hostRoles(h)
		for _, k := range sortedKeys(h.labels.v) {
			v := h.labels.v[k]
			if err := labelKey(k); err != nil {
				b.errorf(keyRange(h.labels.expr, k).Ptr(), "Invalid label", "Label key %q of host %q: %s.", k, h.name, err)
			} else if !labelValueOK(v) {
				shown := quote(v)
				if h.labels.sensitive[k] {
					shown = "(sensitive)"
				}
				b.errorf(keyRange(h.labels.expr, k).Ptr(), "Invalid label", "Label %q of host %q has value %s; %s.", k, h.name, shown, labelValueRule(v))
			}
			host.Labels[k] = v
		}
		host.Taints = b.hostTaints(h)
		b.rawHosts = append(b.rawHosts, h)
		c.hosts = append(c.hosts, host)
	}
}

// hostTaints parses the taints list, refusing a second taint with the key
// and effect of an earlier one (the API server refuses such a node).
func (b *builder) hostTaints(h *rawHost) []Taint {
	var out []Taint
	seen := map[[2]string]int{} // key and effect: index in the list
	for i, s := range h.taints.v {
		rng := elemRange(h.taints.expr, i)
		t, err := parseTaint(s)
		if err != nil {
			b.errorf(&rng, "Invalid taint", "Taint %s of host %q: %s.", h.taints.show(s), h.name, err)
			continue
		}
		id := [2]string{t.Key, t.Effect}
		if j, dup := seen[id]; dup {
			b.errorf(&rng, "Duplicate taint", "Host %q has two taints with key %q and effect %s (the first at %s); Kubernetes allows one taint per key and effect.", h.name, t.Key, t.Effect, at(elemRange(h.taints.expr, j)))
			continue
		}
		seen[id] = i
		out = append(out, t)
	}
	return out
}

// labelValueRule names the limit a label value breaks.
func labelValueRule(v string) string {
	if len(v) > 63 {
		return fmt.Sprintf("it is %d characters, and a label value is at most 63 characters", len(v))
	}
	return "a label value is at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
}

// hostAddresses checks address and internal_address: well formed, unique,
// and outside the pod and service ranges.
func (b *builder) hostAddresses(c *Cluster, h *rawHost, host *Host, byAddr map[string]*rawHost, byNodeAddr map[netip.Addr]*rawHost) {
	if !h.address.set {
		return
	}
	ip, err := netip.ParseAddr(h.address.v)
	isIP := err == nil
	if !isIP && !hostname(h.address.v) {
		b.valueErr(h.address.field, "Invalid address", "Host %q has address %s, which is neither an IP address nor a host name.", h.name, h.address.show(h.address.v))
		return
	}
	if isIP && ip.Zone() != "" {
		b.valueErr(h.address.field, "Invalid address", "Host %q has address %s; zoned IPv6 addresses are not supported.", h.name, h.address.show(h.address.v))
		return
	}
	key := fmt.Sprintf("%s port %d", normalizeAddress(h.address.v), host.Port)
	if prev := byAddr[key]; prev != nil {
		b.valueErr(h.address.field, "Duplicate host address", "Host %q has the same address and SSH port (%s) as host %q at %s. Each host needs its own address.", h.name, key, prev.name, at(prev.address.rng))
		return
	}
	byAddr[key] = h

	node := ip.Unmap()
	nodeField := h.address
	if h.internal.set {
		a, err := netip.ParseAddr(h.internal.v)
		if err != nil || a.Zone() != "" {
			b.valueErr(h.internal.field, "Invalid address", "Host %q has internal_address %s, which is not an IP address.", h.name, h.internal.show(h.internal.v))
			return
		}
		node, nodeField, isIP = a.Unmap(), h.internal, true
		host.InternalAddress = node.String()
	}
	if !isIP {
		return
	}
	if node.IsUnspecified() || node.IsMulticast() {
		b.valueErr(nodeField.field, "Invalid address", "Host %q has address %s, which cannot be a node address.", h.name, node)
		return
	}
	if b.mixedFamily(c, h, nodeField, node) {
		return
	}
	for _, r := range []struct {
		name string
		p    netip.Prefix
	}{{"pod_cidr", c.podCIDR}, {"service_cidr", c.serviceCIDR}} {
		if r.p.IsValid() && r.p.Contains(node) {
			b.valueErr(nodeField.field, "Host address inside "+r.name, "Host %q has address %s, inside %s %s. Host, pod and Service addresses must come from separate ranges; change %s.", h.name, node, r.name, r.p, r.name)
		}
	}
	// Several hosts may share an SSH address behind port forwards, but not
	// the address their node advertises.
	if prev := byNodeAddr[node]; prev != nil {
		b.valueErr(nodeField.field, "Duplicate node address", "Host %q advertises %s, like host %q. Set a distinct internal_address on each.", h.name, node, prev.name)
		return
	}
	byNodeAddr[node] = h
}

// mixedFamily refuses a node address of another family than the pod and
// Service ranges: clusterctl builds single-stack clusters (one pod CIDR
// per node, one Service range), so an IPv6 node in an IPv4 cluster or the
// reverse could not route pods or reach Services.
func (b *builder) mixedFamily(c *Cluster, h *rawHost, f strField, node netip.Addr) bool {
	pod, svc := c.podCIDR, c.serviceCIDR
	if !pod.IsValid() || !svc.IsValid() || pod.Addr().Is4() != svc.Addr().Is4() || pod.Addr().Is4() == node.Is4() {
		return false // nothing to compare with, or the ranges are already refused
	}
	fam, rangeFam := "IPv6", "IPv4"
	if node.Is4() {
		fam, rangeFam = rangeFam, fam
	}
	b.valueErr(f.field, "Mixed address families", "Host %q has the %s address %s, but pod_cidr %s and service_cidr %s are %s. clusterctl builds single-stack clusters (dual-stack is not supported): give the host an %s %s, or use %s ranges.",
		h.name, fam, node, c.podCIDR, c.serviceCIDR, rangeFam, rangeFam, addrAttr(f), fam)
	return true
}

// addrAttr names the attribute a node address comes from.
func addrAttr(f strField) string {
	if f.name == "internal_address" {
		return "internal_address"
	}
	return "address (or internal_address)"
}

// hostRoles checks the roles list.
func (b *builder) hostRoles(h *rawHost) []string {
	if !h.roles.set {
		return nil
	}
	known := []string{RoleControlPlane, RoleEtcd, RoleWorker}
	var roles []string
	if len(h.roles.v) == 0 {
		b.valueErr(h.roles.field, "Host without roles", "Host %q has no roles; give it at least one of %s.", h.name, quoteList(known))
		return nil
	}
	for i, r := range h.roles.v {
		rng := elemRange(h.roles.expr, i)
		switch {
		case !slices.Contains(known, r):
			b.errorf(&rng, "Unknown role", "Host %q has role %s; the roles are %s.%s", h.name, h.roles.show(r), quoteList(known), suggest(r, known))
		case slices.Contains(roles, r):
			b.warnf(&rng, "Repeated role", "Host %q lists role %q twice.", h.name, r)
		default:
			roles = append(roles, r)
		}
	}
	return roles
}

// parseTaint reads "key=value:Effect" or "key:Effect".
func parseTaint(s string) (Taint, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Taint{}, fmt.Errorf("write it as \"key=value:Effect\" or \"key:Effect\"")
	}
	t := Taint{Key: s[:i], Effect: s[i+1:]}
	if k, v, ok := strings.Cut(t.Key, "="); ok {
		t.Key, t.Value = k, v
	}
	if effects := taintEffects(); !slices.Contains(effects, t.Effect) {
		return Taint{}, fmt.Errorf("effect %q is not one of %s%s", t.Effect, quoteList(effects), inlineSuggest(t.Effect, effects))
	}
	if err := labelKey(t.Key); err != nil {
		return Taint{}, fmt.Errorf("key %q: %v", t.Key, err)
	}
	if !labelValueOK(t.Value) {
		return Taint{}, fmt.Errorf("value %q must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", t.Value)
	}
	return t, nil
}

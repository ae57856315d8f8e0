package spec

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/spec/skew"
	"github.com/hashicorp/hcl/v2"
)

// defaultHostsFor says which hosts run a component unless its block lists
// hosts: etcd on etcd hosts, the control plane on control-plane hosts,
// the node components on every host.
func defaultHostsFor(component string, h Host) bool {
	switch component {
	case bundle.Etcd:
		return h.HasRole(RoleEtcd)
	case bundle.KubeAPIServer, bundle.KubeControllerManager, bundle.KubeScheduler:
		return h.HasRole(RoleControlPlane)
	}
	return true
}

// requiredRole is the role a host needs to run component, "" for any host.
func requiredRole(component string) string {
	switch component {
	case bundle.Etcd:
		return RoleEtcd
	case bundle.KubeAPIServer, bundle.KubeControllerManager, bundle.KubeScheduler:
		return RoleControlPlane
	}
	return ""
}

// bundleVersions lists the versions of component that some bundle release pins.
func bundleVersions(component string) []string {
	var out []string
	for _, r := range bundle.Releases() {
		if v, ok := r.Version(component); ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func (b *builder) components(c *Cluster, blocks hcl.Blocks) map[string]*rawComponent {
	known := bundle.SpecComponents()
	raws := map[string]*rawComponent{}
	hostNames := make([]string, len(c.hosts))
	for i, h := range c.hosts {
		hostNames[i] = h.Name
	}
	for _, blk := range blocks {
		name := blk.Labels[0]
		if !slices.Contains(known, name) {
			b.errorf(blk.LabelRanges[0].Ptr(), "Unknown component", "There is no component %q; the components are %s.%s", name, quoteList(known), suggest(name, known))
			continue
		}
		if prev := raws[name]; prev != nil {
			b.errorf(blk.DefRange.Ptr(), "Duplicate component block", "Component %q was already configured at %s. Each component has at most one block across all files.", name, at(prev.declRange))
			continue
		}
		content, diags := blk.Body.Content(componentSchema())
		b.diags = append(b.diags, diags...)
		a := content.Attributes
		r := &rawComponent{
			name:      name,
			labelRng:  blk.LabelRanges[0],
			declRange: blk.DefRange,
			version:   b.str(a, "version"),
			extraArgs: b.strMap(a, "extra_args"),
			hosts:     b.list(a, "hosts"),
		}
		raws[name] = r
		if v := r.version; v.set {
			pv, err := skew.Parse(v.v)
			if err == nil {
				err = checkRelease(v.v)
			}
			if err != nil {
				b.valueErr(v.field, "Invalid version", "Version of %s: %s.", name, versionError(v.field, err))
				r.version.set = false
			} else {
				// Keep the version even when the bundle lacks it, so that the
				// skew rules can say what else is wrong with it.
				r.version.v = pv.String()
				if avail := bundleVersions(name); !slices.Contains(avail, r.version.v) {
					b.valueErr(v.field, "Version not in the bundle", "%s %s is not one clusterctl ships, so it cannot be installed; available: %s.", name, pv, strings.Join(avail, ", "))
				}
			}
		}
		for _, k := range sortedKeys(r.extraArgs.v) {
			if k == "" || strings.HasPrefix(k, "-") || strings.ContainsAny(k, "= \t\n") {
				b.errorf(keyRange(r.extraArgs.expr, k).Ptr(), "Invalid flag name", "extra_args key %q must be a bare flag name, without leading dashes or '=': { %q = \"value\" } becomes --%s=value.", k, "v", "v")
			}
		}
		b.componentHosts(c, r, hostNames)
	}

	for _, name := range known {
		comp := Component{Name: name, ExtraArgs: map[string]string{}, sensitiveArg: map[string]bool{}, VersionRange: b.kvRange}
		if v, ok := c.release.Version(name); ok && c.kubernetesVersion != "" {
			comp.Version = v
		}
		r := raws[name]
		if r != nil {
			comp.DeclRange = r.declRange
			if r.version.set {
				comp.Version, comp.VersionSet, comp.VersionRange = r.version.v, true, r.version.rng
			}
			for k, v := range r.extraArgs.v {
				comp.ExtraArgs[k] = v
				if r.extraArgs.sensitive[k] {
					comp.sensitiveArg[k] = true
				}
			}
		}
		if r != nil && r.hosts.set {
			comp.HostsSet = true
			for _, h := range c.hosts {
				if slices.Contains(r.hosts.v, h.Name) {
					comp.Hosts = append(comp.Hosts, h.Name)
				}
			}
		} else {
			for _, h := range c.hosts {
				if defaultHostsFor(name, h) {
					comp.Hosts = append(comp.Hosts, h.Name)
				}
			}
		}
		c.components = append(c.components, comp)
	}
	return raws
}

// componentHosts checks the hosts list of a component block.
func (b *builder) componentHosts(c *Cluster, r *rawComponent, hostNames []string) {
	if !r.hosts.set {
		return
	}
	if len(r.hosts.v) == 0 {
		b.valueErr(r.hosts.field, "Empty hosts list", "Component %q has an empty hosts list. Remove the attribute to run it on its default hosts.", r.name)
		return
	}
	role := requiredRole(r.name)
	var seen []string
	for i, name := range r.hosts.v {
		rng := elemRange(r.hosts.expr, i)
		h, ok := hostByName(c, name)
		switch {
		case !ok:
			b.errorf(&rng, "Unknown host", "Component %q lists host %s, but no host block has that name.%s", r.name, r.hosts.show(name), suggest(name, hostNames))
		case slices.Contains(seen, name):
			b.errorf(&rng, "Repeated host", "Component %q lists host %q twice.", r.name, name)
		case role != "" && !h.HasRole(role):
			b.errorf(&rng, "Host lacks role", "Component %q can only run on hosts with the %s role, and host %q has roles %s.", r.name, role, name, quoteList(h.Roles))
		}
		seen = append(seen, name)
	}
}

func hostByName(c *Cluster, name string) (Host, bool) {
	for _, h := range c.hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

func (b *builder) artifacts(c *Cluster, blocks hcl.Blocks) {
	blk := b.onlyOne(blocks, "artifacts")
	if blk == nil {
		return
	}
	content, diags := blk.Body.Content(artifactsSchema())
	b.diags = append(b.diags, diags...)
	if d := b.str(content.Attributes, "dir"); d.set {
		if strings.TrimSpace(d.v) == "" {
			b.valueErr(d.field, "Invalid artifacts dir", "dir must not be empty; remove it to use the bundle cache.")
		} else {
			c.artifacts.Dir = b.path(d.v, d.rng.Filename)
		}
	}
	// mirror was accepted once and never fetched from: refuse it by name
	// rather than let a spec believe it works.
	if m, ok := content.Attributes["mirror"]; ok {
		b.errorf(m.NameRange.Ptr(), "artifacts.mirror is not supported", "clusterctl does not fetch artifacts from a mirror. Fill the cache with `clusterctl bundle build` (or `bundle fetch` where upstream's release files are reachable), or copy a filled cache to this machine and name it with dir.")
	}
}

// crossChecks are the rules that look at the whole cluster.
func (b *builder) crossChecks(c *Cluster, raws map[string]*rawComponent) {
	where := c.declRange
	if c.declRange.Filename == "" {
		return // no cluster block: already reported
	}
	if len(b.rawHosts) == 0 {
		b.errorf(&where, "No hosts", "The spec has no host blocks. Add at least one host with the control-plane, etcd and worker roles.")
		return
	}
	if len(c.HostsWithRole(RoleControlPlane)) == 0 && b.allRolesValid() {
		b.errorf(&where, "No control-plane host", "No host has the control-plane role, so nothing would run the API server. Add \"control-plane\" to the roles of at least one host.")
	}
	etcd := c.components[slices.Index(bundle.SpecComponents(), bundle.Etcd)]
	etcdSubject := where
	if r := raws[bundle.Etcd]; r != nil && r.hosts.set {
		etcdSubject = r.hosts.rng
	}
	switch n := len(etcd.Hosts); {
	case n == 0 && b.allRolesValid():
		b.errorf(&etcdSubject, "No etcd host", "No host runs etcd. Add \"etcd\" to the roles of one or three hosts (usually the control-plane hosts).")
	case n > 0 && n%2 == 0:
		b.warnf(&etcdSubject, "Even number of etcd members", "etcd runs on %d hosts. An etcd cluster of %d members tolerates as many failures (%d) as one of %d, with more members to keep in sync; use an odd number.", n, n, (n-1)/2, n-1)
	}
	if len(c.HostsWithRole(RoleWorker)) == 0 && b.allRolesValid() {
		b.warnf(&where, "No worker host", "No host has the worker role, so ordinary pods have nowhere to run. Add \"worker\" to the roles of a host if that is not what you want.")
	}
	if n := len(c.HostsWithRole(RoleControlPlane)); n > 1 && c.apiEndpoint == "" {
		b.warnf(&where, "No api_endpoint for several control planes", "There are %d control-plane hosts but no api_endpoint, so kubeconfigs point at the first one only and lose access when it is down. Set api_endpoint to a load balancer or virtual IP in front of them.", n)
	}
	b.nodeComponents(c, raws)
	b.skew(c, raws)
	b.podCapacity(c, raws)
}

func (b *builder) allRolesValid() bool {
	for _, h := range b.rawHosts {
		if !h.roles.set || len(h.roles.v) == 0 {
			return false
		}
		for _, r := range h.roles.v {
			if r != RoleControlPlane && r != RoleEtcd && r != RoleWorker {
				return false
			}
		}
	}
	return true
}

// nodeComponents checks that the node components sit together: the kubelet
// needs containerd, kube-proxy and the CNI config need a kubelet, and a
// worker needs a kubelet.
func (b *builder) nodeComponents(c *Cluster, raws map[string]*rawComponent) {
	hostsOf := func(name string) []string {
		comp, _ := c.Component(name)
		return comp.Hosts
	}
	subject := func(names ...string) *hcl.Range {
		for _, n := range names {
			if r := raws[n]; r != nil && r.hosts.set {
				return r.hosts.rng.Ptr()
			}
		}
		return c.declRange.Ptr()
	}
	// One error per host: a worker missing from kubelet's hosts would
	// otherwise also be reported for kube-proxy and cni.
	reported := map[string]bool{}
	kubelet := hostsOf(bundle.Kubelet)
	for _, h := range c.HostsWithRole(RoleWorker) {
		if !slices.Contains(kubelet, h.Name) {
			b.errorf(subject(bundle.Kubelet), "Worker without kubelet", "Host %q has the worker role but is not in the hosts of component \"kubelet\", so it could not run pods.", h.Name)
			reported[h.Name] = true
		}
	}
	for _, pair := range []struct{ needs, on string }{
		{bundle.Containerd, bundle.Kubelet},
		{bundle.Kubelet, bundle.KubeProxy},
		{bundle.Kubelet, bundle.CNI},
	} {
		have := hostsOf(pair.needs)
		for _, h := range hostsOf(pair.on) {
			if !slices.Contains(have, h) && !reported[h] {
				b.errorf(subject(pair.on, pair.needs), "Missing "+pair.needs, "Host %q runs %s but not %s, which %s needs on the same host. Add the host to the hosts of %s, or remove it from %s.", h, pair.on, pair.needs, pair.on, pair.needs, pair.on)
				reported[h] = true
			}
		}
	}
}

// skew applies the Kubernetes version-skew policy to the effective
// component versions.
func (b *builder) skew(c *Cluster, raws map[string]*rawComponent) {
	api, ok := c.Component(bundle.KubeAPIServer)
	if !ok || api.Version == "" {
		return
	}
	apiV, err := skew.Parse(api.Version)
	if err != nil {
		return
	}
	for _, comp := range c.components {
		if comp.Version == "" || comp.Name == bundle.KubeAPIServer || comp.Name == bundle.Containerd || comp.Name == bundle.CNI {
			continue
		}
		v, err := skew.Parse(comp.Version)
		if err != nil {
			continue
		}
		if err := skew.Check(comp.Name, v, apiV); err != nil {
			subject := comp.VersionRange
			if !comp.VersionSet && api.VersionSet {
				subject = api.VersionRange
			}
			summary := "Version skew"
			if se := (*skew.Error)(nil); errors.As(err, &se) {
				summary += ": " + se.Component + " " + se.Rule
			}
			b.errorf(&subject, summary, "%s.", err)
		}
	}
}

// podCapacity checks that pod_cidr holds one node range per kubelet host.
func (b *builder) podCapacity(c *Cluster, raws map[string]*rawComponent) {
	if !c.podCIDR.IsValid() {
		return
	}
	// The controller-manager gives every node a /24 (IPv4) or /64 (IPv6)
	// of pod_cidr unless its extra_args say otherwise.
	mask, maskRange := 24, b.podRange
	flags := []string{"node-cidr-mask-size", "node-cidr-mask-size-ipv4"}
	if c.podCIDR.Addr().Is6() {
		mask, flags[1] = 64, "node-cidr-mask-size-ipv6"
	}
	cm, _ := c.Component(bundle.KubeControllerManager)
	for _, flag := range flags {
		s, ok := cm.ExtraArgs[flag]
		if !ok {
			continue
		}
		rng := keyRange(raws[bundle.KubeControllerManager].extraArgs.expr, flag)
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > c.podCIDR.Addr().BitLen() {
			b.errorf(&rng, "Invalid node CIDR mask size", "%s = %q must be a prefix length from 1 to %d.", flag, s, c.podCIDR.Addr().BitLen())
			return
		}
		mask, maskRange = n, rng
	}
	nodes := len(c.HostsRunning(bundle.Kubelet))
	if c.podCIDR.Bits() > mask {
		b.errorf(&maskRange, "pod_cidr too small", "pod_cidr %s is smaller than one node's pod range (/%d). Use a larger pod_cidr.", c.podCIDR, mask)
		return
	}
	if bits := mask - c.podCIDR.Bits(); bits < 31 && nodes > 1<<bits {
		b.errorf(&maskRange, "pod_cidr too small", "pod_cidr %s holds %s of /%d, but %d hosts run a kubelet. Use a larger pod_cidr.", c.podCIDR, plural(1<<bits, "node range"), mask, nodes)
	}
}

package spec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Image is a container image archive of the user's (docker-archive or OCI
// tar) that clusterctl puts on nodes, so pods can run it with no registry:
// `image "NAME" { archive = "app.tar" }`.
type Image struct {
	Name      string
	Archive   string   // absolute path on the workstation
	Roles     []string // hosts with any of these roles get it...
	Hosts     []string // ...and these; neither: every kubelet host
	DeclRange hcl.Range
}

// Images returns the spec's image archives, in the order written.
func (c *Cluster) Images() []Image {
	out := slices.Clone(c.images)
	for i := range out {
		out[i].Roles, out[i].Hosts = slices.Clone(out[i].Roles), slices.Clone(out[i].Hosts)
	}
	return out
}

// ImagesFor are the archives host h imports (the kubelet hosts among them).
func (c *Cluster) ImagesFor(h Host) []Image {
	var out []Image
	for _, img := range c.Images() {
		all := len(img.Roles) == 0 && len(img.Hosts) == 0
		if all || slices.Contains(img.Hosts, h.Name) || slices.ContainsFunc(img.Roles, h.HasRole) {
			out = append(out, img)
		}
	}
	return out
}

func imageSchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "archive", Required: true},
		{Name: "roles"},
		{Name: "hosts"},
	}}
}

// images decodes the image blocks. The archive must be a readable regular
// file; its digest is taken when a plan renders the nodes.
func (b *builder) images(c *Cluster, blocks hcl.Blocks) {
	seen := map[string]hcl.Range{}
	roles := []string{RoleControlPlane, RoleEtcd, RoleWorker}
	for _, blk := range blocks {
		name := blk.Labels[0]
		if prev, ok := seen[name]; ok {
			b.errorf(blk.DefRange.Ptr(), "Duplicate image block", "Image %q was already declared at %s.", name, at(prev))
			continue
		}
		seen[name] = blk.DefRange
		if !dnsLabel(name) {
			b.errorf(blk.LabelRanges[0].Ptr(), "Invalid image name", "Image name %q must be a DNS label: lower-case letters, digits and '-', at most 63 characters.", name)
			continue
		}
		content, diags := blk.Body.Content(imageSchema())
		b.diags = append(b.diags, diags...)
		attrs := content.Attributes
		img := Image{Name: name, DeclRange: blk.DefRange}
		if a := b.str(attrs, "archive"); a.set {
			img.Archive = b.path(a.v, a.rng.Filename)
			if st, err := os.Stat(img.Archive); errors.Is(err, fs.ErrNotExist) {
				where := "" // relative paths are the spec file's
				if !filepath.IsAbs(a.v) && !strings.HasPrefix(a.v, "~") {
					where = " next to " + filepath.Base(a.rng.Filename)
				}
				b.valueErr(a.field, "Image archive not found", "archive %s: there is no such file%s.", a.show(a.v), where)
			} else if err != nil {
				b.valueErr(a.field, "Image archive not readable", "archive %s: %v.", a.show(a.v), err)
			} else if !st.Mode().IsRegular() {
				b.valueErr(a.field, "Image archive not a file", "archive %s is not a regular file.", a.show(a.v))
			}
		}
		if r := b.list(attrs, "roles"); r.set {
			for _, role := range r.v {
				if !slices.Contains(roles, role) {
					b.valueErr(r.field, "Unknown role", "roles: %q is not a role; the roles are %s.", role, quoteList(roles))
				}
			}
			img.Roles = r.v
		}
		if h := b.list(attrs, "hosts"); h.set {
			for _, name := range h.v {
				if _, ok := c.Host(name); !ok {
					b.valueErr(h.field, "Unknown host", "hosts: there is no host %q.", name)
				}
			}
			img.Hosts = h.v
		}
		c.images = append(c.images, img)
	}
}

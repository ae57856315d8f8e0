package spec

import (
	"net/url"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Registry is how nodes reach one image registry (`registry "HOST" {}`):
// mirrors tried in order before the registry itself, a CA to trust, and
// credentials read from the environment when the plan is made. containerd
// gets it as a hosts.toml.
type Registry struct {
	Host    string   // the registry as images name it: "images.example.com", "10.0.0.5:5000"
	Mirrors []string // https:// or http:// URLs
	CA      []byte   // PEM, from ca_file; nil: the system roots
	CAFile  string
	// UsernameEnv and PasswordEnv name the variables the credentials come
	// from; their values are never printed.
	UsernameEnv, PasswordEnv string
	username, password       string
	DeclRange                hcl.Range
}

// Credentials are the registry's user name and password ("" when none).
func (r Registry) Credentials() (user, password string) { return r.username, r.password }

// Registries returns the spec's registries, in the order written.
func (c *Cluster) Registries() []Registry {
	out := slices.Clone(c.registries)
	for i := range out {
		out[i].Mirrors, out[i].CA = slices.Clone(out[i].Mirrors), slices.Clone(out[i].CA)
	}
	return out
}

func registrySchema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "mirrors"},
		{Name: "ca_file"},
		{Name: "username_env"},
		{Name: "password_env"},
	}}
}

func (b *builder) registries(c *Cluster, blocks hcl.Blocks) {
	seen := map[string]hcl.Range{}
	for _, blk := range blocks {
		host := blk.Labels[0]
		if u, err := url.Parse("https://" + host); err != nil || host == "" || u.Host != host || strings.ContainsAny(host, "/ ") {
			b.errorf(blk.LabelRanges[0].Ptr(), "Invalid registry", "Registry %q must be a host name or address with an optional :port, as image references name it (no scheme, no path).", host)
			continue
		}
		if prev, ok := seen[host]; ok {
			b.errorf(blk.DefRange.Ptr(), "Duplicate registry block", "Registry %q was already configured at %s.", host, at(prev))
			continue
		}
		seen[host] = blk.DefRange
		content, diags := blk.Body.Content(registrySchema())
		b.diags = append(b.diags, diags...)
		a := content.Attributes
		r := Registry{Host: host, DeclRange: blk.DefRange}
		if m := b.list(a, "mirrors"); m.set {
			for _, s := range m.v {
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
					b.valueErr(m.field, "Invalid mirror", "mirrors entry %q must be an https:// or http:// URL without credentials (use username_env and password_env).", s)
					continue
				}
				r.Mirrors = append(r.Mirrors, strings.TrimRight(s, "/"))
			}
		}
		if f := b.str(a, "ca_file"); f.set {
			r.CAFile = b.path(f.v, f.rng.Filename)
			pem, err := ReadFile(r.CAFile, f.v, MaxFileSize)
			switch {
			case err != nil:
				b.valueErr(f.field, "Unreadable ca_file", "ca_file %s: %s.", f.show(f.v), fileProblem(err))
			case !strings.Contains(string(pem), "-----BEGIN CERTIFICATE-----"):
				b.valueErr(f.field, "Invalid ca_file", "ca_file %s holds no PEM certificate.", f.show(f.v))
			default:
				r.CA = pem
			}
		}
		user, pass := b.str(a, "username_env"), b.str(a, "password_env")
		if user.set != pass.set {
			f := user.field
			if pass.set {
				f = pass.field
			}
			b.valueErr(f, "Incomplete credentials", "Registry %q needs both username_env and password_env, or neither.", host)
		} else if user.set {
			for _, e := range []strField{user, pass} {
				if !envName(e.v) {
					b.valueErr(e.field, "Invalid environment variable name", "%s is the NAME of an environment variable (letters, digits and '_'), not its value.", e.show(e.v))
				} else if b.in.getenv(e.v) == "" {
					b.valueErr(e.field, "Environment variable not set", "Registry %q takes its credentials from $%s, which is not set.", host, e.v)
				}
			}
			r.UsernameEnv, r.PasswordEnv = user.v, pass.v
			r.username, r.password = b.in.getenv(user.v), b.in.getenv(pass.v)
		}
		c.registries = append(c.registries, r)
	}
}

package components

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/clusterctl/clusterctl/spec"
)

// RegistriesDir holds containerd's config_path folders: one per set of
// registry blocks, named after its settings (not its secrets), so a
// registry removed from the spec is gone from the folder containerd reads;
// inside, one folder per registry with its hosts.toml (and ca.crt).
const RegistriesDir = ConfigRoot + "/registries"

// registryConfig returns containerd's config_path and the hosts.toml (and
// CA) of every registry: its mirrors in order, each with the CA and the
// credentials, then the registry itself. A hosts.toml with credentials is
// sensitive: the plan shows "(sensitive)" and the file is 0600.
func registryConfig(rs []spec.Registry) (string, []File) {
	d := sha256.New()
	for _, r := range rs {
		fmt.Fprintf(d, "%q %q %q %q %q\n", r.Host, r.Mirrors, r.CA, r.UsernameEnv, r.PasswordEnv)
	}
	root := path.Join(RegistriesDir, hex.EncodeToString(d.Sum(nil))[:12])
	var out []File
	for _, r := range rs {
		dir := path.Join(root, r.Host)
		var settings []string
		if len(r.CA) > 0 {
			ca := path.Join(dir, "ca.crt")
			out = append(out, File{Path: ca, Data: r.CA, Mode: 0o644})
			settings = append(settings, "ca = "+strconv.Quote(ca))
		}
		user, pass := r.Credentials()
		var header string
		if user != "" {
			header = "authorization = " + strconv.Quote("Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		}
		var b strings.Builder
		fmt.Fprintf(&b, "# Written by clusterctl from the spec's registry %q block; edits are overwritten.\n", r.Host)
		fmt.Fprintf(&b, "server = %s\n", strconv.Quote("https://"+r.Host))
		if len(r.Mirrors) == 0 {
			for _, s := range settings {
				b.WriteString(s + "\n")
			}
			if header != "" {
				b.WriteString("\n[header]\n  " + header + "\n")
			}
		}
		for _, m := range r.Mirrors {
			q := strconv.Quote(m)
			fmt.Fprintf(&b, "\n[host.%s]\n  capabilities = [\"pull\", \"resolve\"]\n", q)
			for _, s := range settings {
				b.WriteString("  " + s + "\n")
			}
			if header != "" {
				fmt.Fprintf(&b, "  [host.%s.header]\n    %s\n", q, header)
			}
		}
		f := File{Path: path.Join(dir, "hosts.toml"), Data: []byte(b.String()), Mode: 0o644}
		if user != "" {
			f.Mode, f.Sensitive = 0o600, true
		}
		out = append(out, f)
	}
	return root, out
}

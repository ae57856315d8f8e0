package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"unicode"

	"github.com/clusterctl/clusterctl/bundle"
	"github.com/clusterctl/clusterctl/internal/atomicfile"
	"github.com/clusterctl/clusterctl/spec"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"
	"github.com/zclconf/go-cty/cty"
)

// starterFile is the file `init` writes in the spec folder.
const starterFile = "cluster.hcl"

type initOptions struct {
	force             bool
	name              string
	kubernetesVersion string
}

func newInitCmd(g *globals) *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a commented starter spec (cluster.hcl) into the spec folder",
		Long: `Init writes cluster.hcl, a commented starter spec with one example host, into the
spec folder (-chdir, created if missing). If other *.hcl files there already define
hosts or ssh settings (for example lab.hcl from clusterctl lab up), the starter
leaves those out so that the folder stays one valid spec.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInit(g, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.force, "force", false, "overwrite an existing cluster.hcl")
	f.StringVar(&o.name, "name", "", "cluster `NAME` (default: derived from the folder name)")
	f.StringVar(&o.kubernetesVersion, "kubernetes-version", bundle.Latest().Kubernetes, "Kubernetes `VERSION` to start with")
	return cmd
}

func runInit(g *globals, o initOptions, stdout, stderr io.Writer) error {
	dir := g.chdir
	rel, err := bundle.ReleaseFor(o.kubernetesVersion)
	if err != nil {
		return err
	}
	name := o.name
	if name == "" {
		name = clusterNameFor(dir)
	}
	// The same rule as the spec's, checked before anything is written.
	if err := spec.CheckClusterName(name); err != nil {
		return fmt.Errorf("-name: the %w", err)
	}
	path := filepath.Join(dir, starterFile)
	if _, err := os.Lstat(path); err == nil && !o.force {
		return fmt.Errorf("%s already exists; use -force to overwrite it", path)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	others, err := otherBlocks(dir)
	if err != nil {
		return err
	}
	if f, ok := others["cluster"]; ok {
		return fmt.Errorf("%s already has a cluster block: this folder has a spec; edit it instead", filepath.Join(dir, f))
	}
	data := starterData{
		Name:              name,
		KubernetesVersion: rel.Kubernetes,
		Supported:         strings.Join(supportedVersions(), ", "),
		SSHFrom:           others["ssh"],
		HostsFrom:         others["host"],
	}
	src, err := renderStarter(data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteKeepMode(path, src, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %s.\n", path)
	if data.HostsFrom != "" {
		fmt.Fprintf(stdout, "Hosts come from %s; the starter has no host blocks.\n", data.HostsFrom)
	}

	// The starter must validate as written; show why if the folder's other
	// files break it.
	_, diags := spec.Load(dir, spec.VarInputs{})
	newDiagWriter(stderr, dir, isTerminal(stderr)).write(diags)
	if diags.HasErrors() {
		fmt.Fprintf(stderr, "The folder's spec has errors (above); fix them, then run clusterctl validate.\n")
		return silentExit(1)
	}
	if data.HostsFrom == "" {
		fmt.Fprintln(stdout, "Next: replace the example host with your machines, then run clusterctl validate and clusterctl plan.")
	} else {
		fmt.Fprintln(stdout, "Next: run clusterctl plan.")
	}
	return nil
}

func supportedVersions() []string {
	var out []string
	for _, r := range bundle.Releases() {
		out = append(out, r.Kubernetes)
	}
	return out
}

// clusterNameFor derives a DNS-label cluster name from a folder name.
func clusterNameFor(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	var b strings.Builder
	for _, r := range strings.ToLower(filepath.Base(abs)) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 63 {
		name = strings.Trim(name[:63], "-")
	}
	if name == "" {
		return "cluster"
	}
	return name
}

// otherBlocks maps each top-level block type found in the folder's other
// spec files to the first file that has one.
// A folder that does not exist yet has none. Files are read with the spec
// loader's rules (bounded, symlinks only inside the folder, nesting
// checked before parsing).
func otherBlocks(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	found := map[string]string{}
	for _, e := range entries {
		if e.IsDir() || !spec.SpecFileName(e.Name()) || e.Name() == starterFile {
			continue
		}
		src, err := spec.ReadSpecFile(dir, e.Name())
		if err != nil {
			return nil, err
		}
		if d := spec.CheckNesting(src, e.Name()); d != nil {
			return nil, errors.New(d.Detail)
		}
		f, _ := hclsyntax.ParseConfig(src, e.Name(), hcl.InitialPos)
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			continue
		}
		for _, b := range body.Blocks {
			if _, seen := found[b.Type]; !seen {
				found[b.Type] = e.Name()
			}
		}
	}
	return found, nil
}

type starterData struct {
	Name, KubernetesVersion, Supported string
	SSHFrom, HostsFrom                 string // other file defining ssh / hosts, or ""
}

// renderStarter fills the starter template: values go in as HCL string
// literals written by hclwrite (escaped, whatever they hold) and file names
// into comments as single quoted lines, so no input adds syntax. The result
// must parse, or nothing is written.
func renderStarter(d starterData) ([]byte, error) {
	t, err := template.New("starter").Funcs(template.FuncMap{"hcl": hclString, "comment": commentText}).Parse(starterTemplate)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, err
	}
	src := hclwrite.Format(buf.Bytes())
	if _, diags := hclsyntax.ParseConfig(src, starterFile, hcl.InitialPos); diags.HasErrors() {
		return nil, fmt.Errorf("the starter spec does not parse: %s", diags.Error())
	}
	return src, nil
}

// hclString is s as an HCL quoted string literal.
func hclString(s string) string {
	return string(hclwrite.TokensForValue(cty.StringVal(s)).Bytes())
}

// commentText is s safe to put in a # comment: one line, quoted when it
// holds anything but printable characters.
func commentText(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

const starterTemplate = `# The clusterctl spec, started by ` + "`clusterctl init`" + `.
#
# Every *.hcl file in this folder is part of one spec. Check it with
# ` + "`clusterctl validate`" + `, see what would change with ` + "`clusterctl plan`" + ` and make
# it so with ` + "`clusterctl apply`" + `. docs/spec.md describes every setting.

cluster {{hcl .Name}} {
  # The Kubernetes release; every component's version follows it.
  # Supported: {{comment .Supported}}.
  kubernetes_version = {{hcl .KubernetesVersion}}

  # Pod and Service address ranges; they must not overlap each other or
  # the hosts' network. The defaults:
  # pod_cidr     = "10.244.0.0/16"
  # service_cidr = "10.96.0.0/12"
  # cluster_dns  = "10.96.0.10"

  # With several control-plane hosts, point clients at a load balancer:
  # api_endpoint = "k8s.example.com:6443"
}
{{if .SSHFrom}}
# SSH settings are in {{comment .SSHFrom}}.
{{else}}
# How clusterctl reaches the hosts.
ssh {
  user           = "root"
  identity_files = ["~/.ssh/id_ed25519"]

  # port             = 22
  # use_agent        = true # default: true when SSH_AUTH_SOCK is set
  # known_hosts_file = "~/.ssh/known_hosts"
  # host_key_policy  = "strict" # or "accept-new": trust a host on first contact
  # sudo             = true     # default: true unless user is root
  # connect_timeout  = "10s"
  #
  # bastion {
  #   address = "bastion.example.com"
  # }
}
{{end}}{{if .HostsFrom}}
# The hosts are in {{comment .HostsFrom}}.
{{else}}
# One block per machine; roles are "control-plane", "etcd" and "worker".
# Replace this example with your hosts.
host "node-1" {
  address = "192.168.10.11"
  roles   = ["control-plane", "etcd", "worker"]

  # labels = { "topology.kubernetes.io/zone" = "a" }
  # taints = ["dedicated=infra:NoSchedule"]
}
{{end}}
# Pin a component's version or pass it extra flags (--name=value):
# component "kube-apiserver" {
#   extra_args = { "audit-log-maxage" = "30" }
# }
`

// Package templates holds the configuration files clusterctl renders for the
// node components, embedded in the binary: containerd's config.toml, the
// KubeletConfiguration, the KubeProxyConfiguration and the CNI network
// list. Rendering fails on a missing value instead of writing an empty one.
package templates

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

// Names of the templates.
const (
	ContainerdConfig = "containerd-config.toml.tmpl"
	KubeletConfig    = "kubelet-config.yaml.tmpl"
	KubeProxyConfig  = "kube-proxy-config.yaml.tmpl"
	CNIConfList      = "cni-bridge.conflist.tmpl"
)

// Render executes the named template with data. Values are inserted with
// the functions below so that each lands quoted for its file format.
func Render(name string, data any) ([]byte, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"json":  jsonValue,
		"toml":  tomlString,
		"yaml":  jsonValue, // a JSON string or list is valid YAML flow syntax
		"lines": func(s []string) string { return strings.Join(s, "\n") },
	}).ParseFS(files, name)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// jsonValue renders v as compact JSON: strings quoted and escaped, lists
// and maps in flow form.
func jsonValue(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// tomlString renders a TOML basic string: JSON's string escapes are all
// valid in TOML, but TOML also forbids a raw DEL, which JSON leaves as is.
func tomlString(s string) (string, error) {
	if strings.ContainsRune(s, 0x7f) {
		return "", fmt.Errorf("value %q cannot be written as a TOML string", s)
	}
	return jsonValue(s)
}

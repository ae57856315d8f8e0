package main

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestMergeKubeconfig(t *testing.T) {
	base := `apiVersion: v1
kind: Config
clusters:
- cluster: {server: "https://other:6443"}
  name: other
- cluster: {server: "https://old:6443"}
  name: demo
users:
- name: me
  user: {token: abc}
contexts:
- context: {cluster: other, user: me}
  name: me@other
current-context: me@other
`
	add := `apiVersion: v1
kind: Config
clusters:
- cluster: {server: "https://10.0.0.1:6443"}
  name: demo
users:
- name: kubernetes-admin
  user: {client-key-data: x}
contexts:
- context: {cluster: demo, user: kubernetes-admin}
  name: kubernetes-admin@demo
current-context: kubernetes-admin@demo
`
	out, err := mergeKubeconfig([]byte(base), []byte(add))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m["current-context"] != "kubernetes-admin@demo" {
		t.Errorf("current-context = %v", m["current-context"])
	}
	if n := len(asList(m["clusters"])); n != 2 {
		t.Errorf("want 2 clusters (other kept, demo replaced), got %d", n)
	}
	if !strings.Contains(string(out), "https://10.0.0.1:6443") || strings.Contains(string(out), "https://old:6443") {
		t.Errorf("demo cluster not replaced:\n%s", out)
	}
	if n := len(asList(m["users"])); n != 2 {
		t.Errorf("want 2 users, got %d", n)
	}
}

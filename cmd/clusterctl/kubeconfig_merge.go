package main

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// mergeKubeconfig adds the clusters, users and contexts of add to base,
// replacing entries with the same name and keeping everything else, and
// makes add's current context the current one.
func mergeKubeconfig(base, add []byte) ([]byte, error) {
	var b, a map[string]any
	if len(base) > 0 {
		if err := yaml.Unmarshal(base, &b); err != nil {
			return nil, fmt.Errorf("existing kubeconfig: %w", err)
		}
	}
	if b == nil {
		b = map[string]any{"apiVersion": "v1", "kind": "Config", "preferences": map[string]any{}}
	}
	if err := yaml.Unmarshal(add, &a); err != nil {
		return nil, fmt.Errorf("new kubeconfig: %w", err)
	}
	for _, key := range []string{"clusters", "users", "contexts"} {
		list, _ := b[key].([]any)
		for _, item := range asList(a[key]) {
			name := nameOf(item)
			replaced := false
			for i, old := range list {
				if nameOf(old) == name {
					list[i] = item
					replaced = true
				}
			}
			if !replaced {
				list = append(list, item)
			}
		}
		b[key] = list
	}
	b["current-context"] = a["current-context"]
	return yaml.Marshal(b)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func nameOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["name"].(string)
	return s
}

package agent

import (
	"strings"
	"testing"
)

func TestInsecureLoopbackOnlyForLoopbackURLs(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://127.0.0.1:10257/healthz", true},
		{"https://[::1]:10259/healthz", true},
		{"https://localhost:10259/healthz", true},
		{"https://10.0.0.1:6443/readyz", false},
		{"https://example.org/healthz", false},
	} {
		u := Unit{Name: "kube-scheduler", Exec: "/bin/true", Health: Health{Type: HealthHTTPS, URL: tt.url, InsecureLoopback: true}}
		_, err := EncodeUnit(u)
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.url, err)
		}
		if !tt.ok && (err == nil || !strings.Contains(err.Error(), "loopback")) {
			t.Errorf("%s: want a loopback error, got %v", tt.url, err)
		}
	}
}

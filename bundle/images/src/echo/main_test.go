package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAnswerNamesPodAndClient(t *testing.T) {
	for _, target := range []string{"/", "/any/path?x=1"} {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.RemoteAddr = "10.244.1.7:51234"
		rec := httptest.NewRecorder()
		handler("echo-5d9f", "10.244.2.3").ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: status %d, content type %q", target, rec.Code, rec.Header().Get("Content-Type"))
		}
		var got map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: %v: %s", target, err, rec.Body)
		}
		want := map[string]string{"hostname": "echo-5d9f", "pod_ip": "10.244.2.3", "client": "10.244.1.7:51234"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q (answer %s)", target, k, got[k], v, strings.TrimSpace(rec.Body.String()))
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: answer has fields %v, want exactly %v", target, got, want)
		}
	}
}

func TestFirstAddressIsNotLoopback(t *testing.T) {
	if a := firstAddress(); strings.HasPrefix(a, "127.") || a == "::1" {
		t.Errorf("firstAddress() = %s", a)
	}
}

func TestGet(t *testing.T) {
	srv := httptest.NewServer(handler("h", "10.0.0.1"))
	defer srv.Close()
	if code := get(srv.URL + "/"); code != 0 {
		t.Fatalf("get of a working server: exit %d", code)
	}
	if code := get("http://127.0.0.1:1/"); code != 1 {
		t.Fatalf("get of a closed port: exit %d, want 1", code)
	}
}

package kubeapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestDeleteNodeIsIdempotent(t *testing.T) {
	var mu sync.Mutex
	nodes := map[string]bool{"w3": true}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		name := r.URL.Path[len("/api/v1/nodes/"):]
		switch {
		case r.Method != http.MethodDelete:
			http.Error(w, "unexpected "+r.Method, http.StatusMethodNotAllowed)
		case !nodes[name]:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"nodes \"` + name + `\" not found"}`))
		default:
			delete(nodes, name)
			w.Write([]byte(`{"kind":"Status","status":"Success"}`))
		}
	}))
	defer srv.Close()
	c := &Client{server: srv.URL, http: srv.Client()}
	for i := range 2 {
		if err := c.DeleteNode(context.Background(), "w3"); err != nil {
			t.Fatalf("delete %d: %v", i+1, err)
		}
	}
	if nodes["w3"] {
		t.Error("the node is still there")
	}
	srv.Close()
	if err := c.DeleteNode(context.Background(), "w3"); err == nil {
		t.Error("an unreachable API server is not an error")
	}
}

package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A fake API server with 45 Secrets in two namespaces: lists in pages, an
// update needs kind, apiVersion and the listed resourceVersion; one Secret
// changes between list and update (409), one is deleted (404).
func TestRewriteSecrets(t *testing.T) {
	type secret struct {
		ns, name string
		rv       int
		data     string
	}
	var mu sync.Mutex
	var secrets []*secret
	for i := range 45 {
		ns := "default"
		if i%2 == 1 {
			ns = "kube-system"
		}
		secrets = append(secrets, &secret{ns: ns, name: fmt.Sprintf("s%02d", i), rv: 100 + i, data: "dmFsdWU="})
	}
	puts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/secrets":
			limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
			start, _ := strconv.Atoi(r.URL.Query().Get("continue"))
			if limit <= 0 || limit > 100 {
				http.Error(w, "want a small limit", http.StatusBadRequest)
				return
			}
			var items []map[string]any
			end := min(start+limit, len(secrets))
			for _, s := range secrets[start:end] {
				items = append(items, map[string]any{
					"metadata": map[string]any{"namespace": s.ns, "name": s.name, "resourceVersion": strconv.Itoa(s.rv)},
					"data":     map[string]string{"k": s.data}, "type": "Opaque"})
			}
			next := ""
			if end < len(secrets) {
				next = strconv.Itoa(end)
			}
			json.NewEncoder(w).Encode(map[string]any{"kind": "SecretList", "metadata": map[string]any{"continue": next}, "items": items})
			// Between the first page and the updates: one Secret is
			// changed, one deleted.
			if start == 0 {
				secrets[3].rv++
				secrets[4].name = "gone"
			}
		case r.Method == http.MethodPut:
			var obj struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Namespace, Name, ResourceVersion string
				} `json:"metadata"`
				Data map[string]string `json:"data"`
			}
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &obj); err != nil || obj.Kind != "Secret" || obj.APIVersion != "v1" || obj.Data["k"] != "dmFsdWU=" {
				http.Error(w, "bad body "+string(b), http.StatusBadRequest)
				return
			}
			for _, s := range secrets {
				if r.URL.Path != "/api/v1/namespaces/"+s.ns+"/secrets/"+s.name {
					continue
				}
				if strconv.Itoa(s.rv) != obj.Metadata.ResourceVersion {
					w.WriteHeader(http.StatusConflict)
					w.Write([]byte(`{"message":"the object has been modified"}`))
					return
				}
				s.rv += 1000
				puts[s.ns+"/"+s.name]++
				w.Write(b)
				return
			}
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"not found"}`))
		default:
			http.Error(w, "unexpected "+r.Method+" "+r.URL.String(), http.StatusMethodNotAllowed)
		}
	}))
	defer srv.Close()
	c := &Client{server: srv.URL, http: srv.Client()}
	rep, err := c.RewriteSecrets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RewriteReport{Rewritten: 43, Changed: 2}, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	for k, n := range puts {
		if n != 1 {
			t.Errorf("%s written %d times", k, n)
		}
	}

	// A failure other than a conflict stops the rewrite and says which.
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Write([]byte(`{"metadata":{},"items":[{"metadata":{"namespace":"a","name":"b","resourceVersion":"1"}}]}`))
			return
		}
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"message":"forbidden"}`))
	}))
	defer failing.Close()
	c = &Client{server: failing.URL, http: failing.Client()}
	if _, err := c.RewriteSecrets(context.Background()); err == nil || !strings.Contains(err.Error(), "a/b") || !strings.Contains(err.Error(), "403") {
		t.Errorf("forbidden: %v", err)
	}
}

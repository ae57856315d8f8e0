package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// apiServer is a small stand-in for the parts of the API a drain uses:
// pods of one node, evictions (one pod guarded by a budget that allows
// its eviction only after two refusals) and the node's unschedulable flag.
type drainAPI struct {
	mu            sync.Mutex
	pods          map[string]Pod // by namespace/name
	refusals      int            // evictions of "web/guarded" refused so far
	allowAfter    int
	unschedulable bool
}

func (a *drainAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case r.Method == http.MethodPatch && r.URL.Path == "/api/v1/nodes/n1":
		var p struct {
			Spec struct {
				Unschedulable bool `json:"unschedulable"`
			} `json:"spec"`
		}
		json.NewDecoder(r.Body).Decode(&p)
		a.unschedulable = p.Spec.Unschedulable
		w.Write([]byte(`{"metadata":{"name":"n1"}}`))
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/pods":
		if r.URL.Query().Get("fieldSelector") != "spec.nodeName=n1" {
			http.Error(w, "bad selector", http.StatusBadRequest)
			return
		}
		var items []Pod
		for _, p := range a.pods {
			items = append(items, p)
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/eviction"):
		parts := strings.Split(r.URL.Path, "/") // /api/v1/namespaces/NS/pods/NAME/eviction
		id := parts[4] + "/" + parts[6]
		if id == "web/guarded" && a.refusals < a.allowAfter {
			a.refusals++
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"message":"Cannot evict pod as it would violate the pod's disruption budget."}`))
			return
		}
		delete(a.pods, id)
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{}`))
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

func pod(ns, name, ownerKind string, ann map[string]string) Pod {
	var p Pod
	p.Metadata.Namespace, p.Metadata.Name, p.Metadata.UID = ns, name, ns+"-"+name
	p.Metadata.Annotations = ann
	if ownerKind != "" {
		p.Metadata.OwnerReferences = append(p.Metadata.OwnerReferences, OwnerReference{ownerKind, true})
	}
	p.Status.Phase = "Running"
	return p
}

func newDrainAPI(allowAfter int) (*drainAPI, *Client) {
	a := &drainAPI{allowAfter: allowAfter, pods: map[string]Pod{}}
	for _, p := range []Pod{
		pod("web", "a", "ReplicaSet", nil),
		pod("web", "guarded", "ReplicaSet", nil),
		pod("kube-system", "proxy", "DaemonSet", nil),
		pod("kube-system", "static", "", map[string]string{"kubernetes.io/config.mirror": "x"}),
	} {
		a.pods[p.id()] = p
	}
	srv := httptest.NewServer(a)
	return a, &Client{server: srv.URL, http: srv.Client()}
}

func TestDrainEvictsRespectingBudgetsAndLeavesDaemonSets(t *testing.T) {
	a, c := newDrainAPI(2)
	rep, err := c.Drain(context.Background(), "n1", DrainOptions{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !a.unschedulable {
		t.Error("node not cordoned")
	}
	if diff := cmp.Diff([]string{"web/a", "web/guarded"}, rep.Evicted); diff != "" {
		t.Errorf("evicted (-want +got):\n%s", diff)
	}
	if a.refusals != 2 {
		t.Errorf("the budget refused %d times, want the drain to retry past 2", a.refusals)
	}
	if _, ok := a.pods["kube-system/proxy"]; !ok {
		t.Error("a DaemonSet pod was evicted")
	}
	if _, ok := a.pods["kube-system/static"]; !ok {
		t.Error("a mirror pod was evicted")
	}
	if err := c.Cordon(context.Background(), "n1", false); err != nil || a.unschedulable {
		t.Errorf("uncordon: %v, unschedulable=%v", err, a.unschedulable)
	}
}

func TestDrainTimesOutNamingTheBlockedPod(t *testing.T) {
	_, c := newDrainAPI(1 << 30)
	_, err := c.Drain(context.Background(), "n1", DrainOptions{Timeout: 1500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "web/guarded") || !strings.Contains(err.Error(), "disruption budget") {
		t.Fatalf("want a timeout naming web/guarded and its budget, got %v", err)
	}
}

func withEmptyDir(p Pod, volumes ...string) Pod {
	for _, v := range volumes {
		vol := Volume{Name: v}
		vol.EmptyDir = &struct {
			Medium string `json:"medium"`
		}{}
		p.Spec.Volumes = append(p.Spec.Volumes, vol)
	}
	return p
}

func TestDrainRefusesUnmanagedAndEmptyDirPodsBeforeCordoning(t *testing.T) {
	a, c := newDrainAPI(0)
	bare := pod("web", "bare", "", nil)
	scratch := withEmptyDir(pod("web", "scratch", "ReplicaSet", nil), "cache")
	a.pods[bare.id()], a.pods[scratch.id()] = bare, scratch

	_, err := c.Drain(context.Background(), "n1", DrainOptions{Timeout: 5 * time.Second})
	var refused *DrainRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("want a *DrainRefusedError, got %v", err)
	}
	want := []RefusedPod{
		{Namespace: "web", Name: "bare", Reasons: []string{ReasonUnmanaged}},
		{Namespace: "web", Name: "scratch", Reasons: []string{ReasonEmptyDir}},
	}
	if diff := cmp.Diff(want, refused.Pods); diff != "" {
		t.Errorf("refused pods (-want +got):\n%s", diff)
	}
	for _, s := range []string{"drain_force = true", "drain_delete_emptydir_data = true", "nothing was evicted"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q does not say %q", err, s)
		}
	}
	if a.unschedulable {
		t.Error("a refused drain cordoned the node")
	}
	if len(a.pods) != 6 {
		t.Errorf("a refused drain evicted pods: %d left of 6", len(a.pods))
	}
}

func TestDrainForceAndDeleteEmptyDirEvictThem(t *testing.T) {
	a, c := newDrainAPI(0)
	bare := pod("web", "bare", "", nil)
	scratch := withEmptyDir(pod("web", "scratch", "ReplicaSet", nil), "cache")
	a.pods[bare.id()], a.pods[scratch.id()] = bare, scratch

	rep, err := c.Drain(context.Background(), "n1", DrainOptions{Timeout: 5 * time.Second, Force: true, DeleteEmptyDirData: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"web/a", "web/bare", "web/guarded", "web/scratch"}, rep.Evicted); diff != "" {
		t.Errorf("evicted (-want +got):\n%s", diff)
	}
}

func TestDrainEvictsEmptyDirPodsAnnotatedSafe(t *testing.T) {
	a, c := newDrainAPI(0)
	scratch := withEmptyDir(pod("web", "scratch", "ReplicaSet", map[string]string{SafeToEvictVolumesAnnotation: "cache, tmp"}), "cache", "tmp")
	a.pods[scratch.id()] = scratch
	if _, err := c.Drain(context.Background(), "n1", DrainOptions{Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.pods[scratch.id()]; ok {
		t.Error("a pod whose emptyDir volumes are all annotated safe was not evicted")
	}
}

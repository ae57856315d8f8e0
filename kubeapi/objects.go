package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Object is a Kubernetes object as its JSON: apiVersion, kind, metadata, ...
type Object = map[string]any

// Resource is how one kind is reached through the API.
type Resource struct {
	APIVersion string // "v1", "apps/v1"
	Kind       string
	Plural     string
	Namespaced bool
}

// Resources are the kinds add-ons are made of, in the order they are
// applied: what others refer to first. There is no discovery: an add-on of
// another kind is an error until it is listed here.
func Resources() []Resource {
	return []Resource{
		{"v1", "Namespace", "namespaces", false},
		{"v1", "ServiceAccount", "serviceaccounts", true},
		{"rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", false},
		{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", false},
		{"rbac.authorization.k8s.io/v1", "Role", "roles", true},
		{"rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", true},
		{"v1", "ConfigMap", "configmaps", true},
		{"v1", "Service", "services", true},
		{"apps/v1", "Deployment", "deployments", true},
		{"apps/v1", "DaemonSet", "daemonsets", true},
		{"policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", true},
		{"apiregistration.k8s.io/v1", "APIService", "apiservices", false},
	}
}

// ResourceOf finds the resource of an object.
func ResourceOf(o Object) (Resource, error) {
	av, _ := o["apiVersion"].(string)
	kind, _ := o["kind"].(string)
	for _, r := range Resources() {
		if r.APIVersion == av && r.Kind == kind {
			return r, nil
		}
	}
	return Resource{}, fmt.Errorf("kind %s %s is not one clusterctl applies", av, kind)
}

// Ref names one object.
type Ref struct {
	Resource
	Namespace, Name string
}

// RefOf is the object's reference.
func RefOf(o Object) (Ref, error) {
	r, err := ResourceOf(o)
	if err != nil {
		return Ref{}, err
	}
	md, _ := o["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	ns, _ := md["namespace"].(string)
	if name == "" || (r.Namespaced && ns == "") || (!r.Namespaced && ns != "") {
		return Ref{}, fmt.Errorf("%s %q: want a name, and a namespace exactly when the kind has one (%q)", r.Kind, name, ns)
	}
	return Ref{Resource: r, Namespace: ns, Name: name}, nil
}

// String is "Deployment kube-system/coredns".
func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// collection is the resource's path, in one namespace when ns is set.
func (r Resource) collection(ns string) string {
	p := "/api/" + r.APIVersion
	if strings.Contains(r.APIVersion, "/") {
		p = "/apis/" + r.APIVersion
	}
	if r.Namespaced && ns != "" {
		p += "/namespaces/" + url.PathEscape(ns)
	}
	return p + "/" + r.Plural
}

func (r Ref) path() string { return r.collection(r.Namespace) + "/" + url.PathEscape(r.Name) }

// Apply creates or updates an object with server-side apply as manager,
// taking over fields another manager set (force): the object becomes
// exactly what clusterctl says for every field it sets.
func (c *Client) Apply(ctx context.Context, o Object, manager string) error {
	ref, err := RefOf(o)
	if err != nil {
		return err
	}
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	q := url.Values{"fieldManager": {manager}, "force": {"true"}}
	if err := c.do(ctx, http.MethodPatch, ref.path()+"?"+q.Encode(), "application/apply-patch+yaml", body, nil); err != nil {
		return fmt.Errorf("apply %s: %w", ref, err)
	}
	return nil
}

// Get reads one object into out.
func (c *Client) Get(ctx context.Context, ref Ref, out any) error {
	return c.do(ctx, http.MethodGet, ref.path(), "", nil, out)
}

// Delete deletes one object and lets the garbage collector take what it
// owns; one that is gone already is not an error.
func (c *Client) Delete(ctx context.Context, ref Ref) error {
	body := []byte(`{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}`)
	err := c.do(ctx, http.MethodDelete, ref.path(), "application/json", body, nil)
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", ref, err)
	}
	return nil
}

// List returns the objects of a resource, in every namespace, that match a
// label selector.
func (c *Client) List(ctx context.Context, r Resource, selector string) ([]Ref, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		} `json:"items"`
	}
	p := r.collection("") + "?" + url.Values{"labelSelector": {selector}}.Encode()
	if err := c.do(ctx, http.MethodGet, p, "", nil, &list); err != nil {
		return nil, fmt.Errorf("list %s: %w", r.Plural, err)
	}
	var out []Ref
	for _, it := range list.Items {
		out = append(out, Ref{Resource: r, Namespace: it.Metadata.Namespace, Name: it.Metadata.Name})
	}
	return out, nil
}

// ListRaw reads a collection path (with its query) into out.
func (c *Client) ListRaw(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, "", nil, out)
}

// Package addons makes cluster add-ons (CoreDNS) and keeps them applied:
// objects clusterctl owns, applied with server-side apply, labelled with
// their add-on, pruned when a version no longer has them, and checked for
// health. The agent runs one reconciler per add-on on a control-plane host
// (`clusterctl agent addon`); the workstation only renders the objects into
// the add-on's generation folder.
package addons

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/clusterctl/clusterctl/kubeapi"
)

// Label marks every object of an add-on with the add-on's name; pruning
// deletes labelled objects the current set does not have.
const Label = "addons.clusterctl.io/name"

// FieldManager is the server-side apply manager of add-on objects.
const FieldManager = "clusterctl"

// Reconciler applies, prunes and checks one add-on's objects.
type Reconciler struct {
	Client  *kubeapi.Client
	Name    string
	Objects []kubeapi.Object
	// DNS, when set, is a name every CoreDNS endpoint and the Service must
	// resolve for the add-on to be healthy.
	DNS string
}

// Labelled returns the objects with the add-on label set, in apply order.
func Labelled(name string, objs []kubeapi.Object) ([]kubeapi.Object, error) {
	order := map[string]int{}
	for i, r := range kubeapi.Resources() {
		order[r.APIVersion+"/"+r.Kind] = i
	}
	out := make([]kubeapi.Object, 0, len(objs))
	for _, o := range objs {
		if _, err := kubeapi.RefOf(o); err != nil {
			return nil, err
		}
		o = clone(o)
		md := o["metadata"].(map[string]any)
		labels, _ := md["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels[Label] = name
		md["labels"] = labels
		out = append(out, o)
	}
	slices.SortStableFunc(out, func(a, b kubeapi.Object) int {
		return cmp.Compare(order[a["apiVersion"].(string)+"/"+a["kind"].(string)], order[b["apiVersion"].(string)+"/"+b["kind"].(string)])
	})
	return out, nil
}

func clone(o kubeapi.Object) kubeapi.Object {
	b, _ := json.Marshal(o)
	var c kubeapi.Object
	_ = json.Unmarshal(b, &c)
	return c
}

// Apply applies every object, in order; the first failure stops it.
func (r *Reconciler) Apply(ctx context.Context) error {
	objs, err := Labelled(r.Name, r.Objects)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := r.Client.Apply(ctx, o, FieldManager); err != nil {
			return err
		}
	}
	return nil
}

// Prune deletes the objects labelled with the add-on that are not in its
// set (all of them for an empty set) and returns what it deleted.
func (r *Reconciler) Prune(ctx context.Context) ([]kubeapi.Ref, error) {
	keep := map[kubeapi.Ref]bool{}
	for _, o := range r.Objects {
		ref, err := kubeapi.RefOf(o)
		if err != nil {
			return nil, err
		}
		keep[ref] = true
	}
	var deleted []kubeapi.Ref
	var errs []error
	rs := kubeapi.Resources()
	slices.Reverse(rs) // what refers to others first
	for _, res := range rs {
		refs, err := r.Client.List(ctx, res, Label+"="+r.Name)
		if err != nil {
			if kubeapi.IsNotFound(err) {
				continue // a kind this API server does not serve
			}
			errs = append(errs, err)
			continue
		}
		for _, ref := range refs {
			if keep[ref] {
				continue
			}
			if err := r.Client.Delete(ctx, ref); err != nil {
				errs = append(errs, err)
				continue
			}
			deleted = append(deleted, ref)
		}
	}
	return deleted, errors.Join(errs...)
}

// Check says why the add-on is not healthy yet, or nil: every Deployment
// and DaemonSet rolled out and available, every APIService Available, and
// the DNS name resolving through every ready endpoint and the Service.
func (r *Reconciler) Check(ctx context.Context) error {
	for _, o := range r.Objects {
		ref, err := kubeapi.RefOf(o)
		if err != nil {
			return err
		}
		switch ref.Kind {
		case "Deployment", "DaemonSet", "APIService":
			var st workload
			if err := r.Client.Get(ctx, ref, &st); err != nil {
				return err
			}
			if why := st.notReady(ref.Kind); why != "" {
				return fmt.Errorf("%s: %s", ref, why)
			}
		}
	}
	if r.DNS != "" {
		return r.checkDNS(ctx)
	}
	return nil
}

// workload is the status of a Deployment, DaemonSet or APIService.
type workload struct {
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int64 `json:"replicas"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration     int64 `json:"observedGeneration"`
		Replicas               int64 `json:"replicas"`
		UpdatedReplicas        int64 `json:"updatedReplicas"`
		AvailableReplicas      int64 `json:"availableReplicas"`
		DesiredNumberScheduled int64 `json:"desiredNumberScheduled"`
		UpdatedNumberScheduled int64 `json:"updatedNumberScheduled"`
		NumberAvailable        int64 `json:"numberAvailable"`
		Conditions             []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"conditions"`
	} `json:"status"`
}

func (w workload) notReady(kind string) string {
	st := w.Status
	switch kind {
	case "APIService":
		for _, c := range st.Conditions {
			if c.Type == "Available" {
				if c.Status == "True" {
					return ""
				}
				return "not available: " + c.Reason + ": " + c.Message
			}
		}
		return "no Available condition yet"
	}
	if st.ObservedGeneration < w.Metadata.Generation {
		return "the controller has not seen the newest spec yet"
	}
	want, updated, avail := st.DesiredNumberScheduled, st.UpdatedNumberScheduled, st.NumberAvailable
	if kind == "Deployment" {
		want, updated, avail = 1, st.UpdatedReplicas, st.AvailableReplicas
		if w.Spec.Replicas != nil {
			want = *w.Spec.Replicas
		}
		if st.Replicas > updated {
			return fmt.Sprintf("%d of %d replicas updated", updated, st.Replicas)
		}
	}
	switch {
	case updated < want:
		return fmt.Sprintf("%d of %d replicas updated", updated, want)
	case avail < want:
		return fmt.Sprintf("%d of %d replicas available", avail, want)
	}
	return ""
}

// checkDNS resolves r.DNS through every ready address of the kube-dns
// Service's EndpointSlices and through its cluster IP.
func (r *Reconciler) checkDNS(ctx context.Context) error {
	ns, svc := CoreDNSService()
	var service struct {
		Spec struct {
			ClusterIP string `json:"clusterIP"`
		} `json:"spec"`
	}
	if err := r.Client.Get(ctx, kubeapi.Ref{Resource: kubeapi.Resource{APIVersion: "v1", Kind: "Service", Plural: "services", Namespaced: true}, Namespace: ns, Name: svc}, &service); err != nil {
		return err
	}
	var eps struct {
		Items []struct {
			Endpoints []struct {
				Addresses  []string `json:"addresses"`
				Conditions struct {
					Ready *bool `json:"ready"`
				} `json:"conditions"`
			} `json:"endpoints"`
		} `json:"items"`
	}
	if err := r.Client.ListRaw(ctx, "/apis/discovery.k8s.io/v1/namespaces/"+ns+"/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D"+svc, &eps); err != nil {
		return err
	}
	servers := map[string]bool{}
	for _, s := range eps.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				for _, a := range e.Addresses {
					servers[a] = true
				}
			}
		}
	}
	if len(servers) == 0 {
		return fmt.Errorf("service %s/%s has no ready endpoint", ns, svc)
	}
	for _, s := range append(slices.Sorted(maps.Keys(servers)), service.Spec.ClusterIP) {
		if err := Resolve(ctx, s, r.DNS); err != nil {
			return err
		}
	}
	return nil
}

// Resolve looks name up (A/AAAA) at the DNS server address, over UDP,
// within two seconds.
func Resolve(ctx context.Context, server, name string) error {
	addr, err := netip.ParseAddr(server)
	if err != nil {
		return fmt.Errorf("DNS server %q: %w", server, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, netip.AddrPortFrom(addr, 53).String())
	}}
	ips, err := res.LookupHost(ctx, name)
	if err != nil {
		return fmt.Errorf("resolve %s at %s: %w", name, server, err)
	}
	if len(ips) == 0 {
		return fmt.Errorf("resolve %s at %s: no address", name, server)
	}
	return nil
}

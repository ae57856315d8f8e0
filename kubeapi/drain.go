package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Pod is the part of a Pod object a drain reads.
type Pod struct {
	Metadata struct {
		Name              string            `json:"name"`
		Namespace         string            `json:"namespace"`
		UID               string            `json:"uid"`
		Annotations       map[string]string `json:"annotations"`
		DeletionTimestamp *string           `json:"deletionTimestamp"`
		OwnerReferences   []OwnerReference  `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		Volumes []Volume `json:"volumes"`
	} `json:"spec"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
}

// OwnerReference is the part of a pod's owner a drain reads.
type OwnerReference struct {
	Kind       string `json:"kind"`
	Controller bool   `json:"controller"`
}

// Volume is the part of a pod volume a drain reads: whether it is an
// emptyDir (its data lives on the node and goes with the pod).
type Volume struct {
	Name     string `json:"name"`
	EmptyDir *struct {
		Medium string `json:"medium"`
	} `json:"emptyDir"`
}

func (p Pod) id() string { return p.Metadata.Namespace + "/" + p.Metadata.Name }

// skipReason says why a drain leaves a pod alone ("" to evict it): mirror
// pods belong to the kubelet, DaemonSet pods would be recreated on the
// same node, finished pods hold nothing.
func (p Pod) skipReason() string {
	if _, ok := p.Metadata.Annotations["kubernetes.io/config.mirror"]; ok {
		return "mirror pod"
	}
	for _, o := range p.Metadata.OwnerReferences {
		if o.Controller && o.Kind == "DaemonSet" {
			return "DaemonSet pod"
		}
	}
	if p.Status.Phase == "Succeeded" || p.Status.Phase == "Failed" {
		return "finished"
	}
	return ""
}

// Why a drain refuses to evict a pod, as kubectl drain does without
// --force and --delete-emptydir-data.
const (
	ReasonUnmanaged = "not managed by a controller"
	ReasonEmptyDir  = "uses emptyDir volume data"
)

// SafeToEvictVolumesAnnotation on a pod names, comma-separated, emptyDir
// volumes that hold nothing worth keeping (a scratch or cache folder): a
// drain evicts the pod when all its emptyDir volumes are named. It is the
// cluster autoscaler's annotation of the same meaning; kubectl drain does
// not read it.
const SafeToEvictVolumesAnnotation = "cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes"

// refusal says why a drain with these options will not evict p (nil: it
// may). A pod already being deleted is leaving anyway: evicting it loses
// nothing more.
func (p Pod) refusal(o DrainOptions) []string {
	if p.Metadata.DeletionTimestamp != nil {
		return nil
	}
	var why []string
	if !o.Force && !slices.ContainsFunc(p.Metadata.OwnerReferences, func(r OwnerReference) bool { return r.Controller }) {
		why = append(why, ReasonUnmanaged)
	}
	if !o.DeleteEmptyDirData {
		safe := strings.Split(p.Metadata.Annotations[SafeToEvictVolumesAnnotation], ",")
		for i := range safe {
			safe[i] = strings.TrimSpace(safe[i])
		}
		if slices.ContainsFunc(p.Spec.Volumes, func(v Volume) bool { return v.EmptyDir != nil && !slices.Contains(safe, v.Name) }) {
			why = append(why, ReasonEmptyDir)
		}
	}
	return why
}

// RefusedPod is a pod a drain will not evict, with the reasons.
type RefusedPod struct {
	Namespace, Name string
	Reasons         []string // ReasonUnmanaged, ReasonEmptyDir
}

func (r RefusedPod) String() string {
	return r.Namespace + "/" + r.Name + " (" + strings.Join(r.Reasons, ", ") + ")"
}

// DrainRefusedError is a drain that would have lost pods for good (no
// controller recreates them) or their emptyDir data. Every such pod on the
// node is listed, and the drain stops before it evicts any of them (nothing
// at all when they were there at its start). The drain does not leave the
// node cordoned unless Cordoned says so: undoing its cordon failed.
type DrainRefusedError struct {
	Node     string
	Pods     []RefusedPod
	Evicted  []string // evicted before a refused pod was bound to the node during the drain
	Cordoned bool
}

// The upgrade block's settings that let a drain evict such pods, for the
// message.
var drainSettings = []struct{ reason, setting, effect string }{
	{ReasonUnmanaged, "drain_force = true", "a pod no controller manages is deleted for good"},
	{ReasonEmptyDir, "drain_delete_emptydir_data = true", "a pod's emptyDir data is deleted"},
}

func (e *DrainRefusedError) Error() string {
	var b strings.Builder
	pods := make([]string, len(e.Pods))
	for i, p := range e.Pods {
		pods[i] = p.String()
	}
	fmt.Fprintf(&b, "drain of node %s refused: %s", e.Node, strings.Join(pods, ", "))
	switch len(e.Evicted) {
	case 0:
		b.WriteString("; nothing was evicted")
	case 1:
		b.WriteString("; 1 pod was evicted before these came")
	default:
		fmt.Fprintf(&b, "; %d pods were evicted before these came", len(e.Evicted))
	}
	if e.Cordoned {
		fmt.Fprintf(&b, " and the node is still cordoned (kubectl uncordon %s)", e.Node)
	} else {
		b.WriteString(" and the drain did not leave the node cordoned")
	}
	var allow []string
	for _, s := range drainSettings {
		if slices.ContainsFunc(e.Pods, func(p RefusedPod) bool { return slices.Contains(p.Reasons, s.reason) }) {
			allow = append(allow, s.setting+" ("+s.effect+")")
		}
	}
	if len(allow) > 0 {
		b.WriteString(". To evict such pods anyway, set in the cluster's upgrade block " + strings.Join(allow, " and "))
	}
	return b.String()
}

// refusedPods lists the pods a drain with o will not evict, leaving out
// skipped pods and those it evicted already (by UID).
func refusedPods(pods []Pod, o DrainOptions, evicted map[string]bool) []RefusedPod {
	var out []RefusedPod
	for _, p := range pods {
		if p.skipReason() != "" || evicted[p.Metadata.UID] {
			continue
		}
		if why := p.refusal(o); len(why) > 0 {
			out = append(out, RefusedPod{Namespace: p.Metadata.Namespace, Name: p.Metadata.Name, Reasons: why})
		}
	}
	slices.SortFunc(out, func(a, b RefusedPod) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return out
}

// PodsOnNode lists the pods bound to a node.
func (c *Client) PodsOnNode(ctx context.Context, node string) ([]Pod, error) {
	var list struct {
		Items []Pod `json:"items"`
	}
	q := url.Values{"fieldSelector": {"spec.nodeName=" + node}}
	err := c.do(ctx, http.MethodGet, "/api/v1/pods?"+q.Encode(), "", nil, &list)
	return list.Items, err
}

// Cordon marks a node (un)schedulable.
func (c *Client) Cordon(ctx context.Context, node string, unschedulable bool) error {
	_, err := c.PatchNode(ctx, node, map[string]any{"spec": map[string]any{"unschedulable": unschedulable}})
	return err
}

// errBlocked is an eviction refused for now (a PodDisruptionBudget).
var errBlocked = errors.New("eviction blocked by a PodDisruptionBudget")

// evict asks the API server to evict a pod through the Eviction API,
// which respects PodDisruptionBudgets (429 while one forbids it).
func (c *Client) evict(ctx context.Context, p Pod) error {
	body, _ := json.Marshal(map[string]any{
		"apiVersion": "policy/v1", "kind": "Eviction",
		"metadata": map[string]any{"name": p.Metadata.Name, "namespace": p.Metadata.Namespace},
	})
	path := "/api/v1/namespaces/" + url.PathEscape(p.Metadata.Namespace) + "/pods/" + url.PathEscape(p.Metadata.Name) + "/eviction"
	err := c.do(ctx, http.MethodPost, path, "application/json", body, nil)
	var se *StatusError
	switch {
	case err == nil, IsNotFound(err):
		return nil
	case errors.As(err, &se) && se.Code == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %w: %s", p.id(), errBlocked, se.Message)
	}
	return err
}

// DrainReport says what a drain did.
type DrainReport struct {
	Evicted []string
	Skipped []string // "ns/name (reason)"
}

// DrainOptions say how long a drain may take and which pods it may evict
// that kubectl drain refuses by default.
type DrainOptions struct {
	Timeout time.Duration
	// Force evicts pods no controller manages (kubectl drain --force):
	// they are gone for good.
	Force bool
	// DeleteEmptyDirData evicts pods with emptyDir volumes (kubectl drain
	// --delete-emptydir-data): the volumes' data is deleted.
	DeleteEmptyDirData bool
}

// DefaultDrainTimeout is a drain's when DrainOptions has none.
const DefaultDrainTimeout = 5 * time.Minute

// Drain cordons a node and evicts its pods (except mirror, DaemonSet and
// finished pods), retrying evictions a PodDisruptionBudget blocks, until
// the pods are gone or the timeout passes. The node stays cordoned; the
// caller uncordons it when it is done.
//
// Like kubectl drain, it refuses pods no controller manages and pods with
// emptyDir volumes unless o allows them: it lists every such pod before it
// cordons the node or evicts anything and returns a *DrainRefusedError.
// One bound to the node while the drain runs is refused the same way,
// before the next eviction, and the cordon is undone.
func (c *Client) Drain(ctx context.Context, node string, o DrainOptions) (DrainReport, error) {
	var rep DrainReport
	if o.Timeout <= 0 {
		o.Timeout = DefaultDrainTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	pods, err := c.PodsOnNode(ctx, node)
	if err != nil {
		return rep, fmt.Errorf("drain %s: list pods: %w", node, err)
	}
	if refused := refusedPods(pods, o, nil); len(refused) > 0 {
		rep.Skipped = skipped(pods)
		return rep, &DrainRefusedError{Node: node, Pods: refused}
	}
	if err := c.Cordon(ctx, node, true); err != nil {
		return rep, fmt.Errorf("cordon %s: %w", node, err)
	}
	evicted := map[string]bool{}
	for {
		pods, err := c.PodsOnNode(ctx, node)
		if err != nil {
			return rep, fmt.Errorf("drain %s: list pods: %w", node, err)
		}
		rep.Skipped = skipped(pods)
		if refused := refusedPods(pods, o, evicted); len(refused) > 0 {
			slices.Sort(rep.Evicted)
			return rep, c.undoCordon(ctx, &DrainRefusedError{Node: node, Pods: refused, Evicted: slices.Clone(rep.Evicted)})
		}
		var left, blocked []string
		for _, p := range pods {
			if p.skipReason() != "" {
				continue
			}
			left = append(left, p.id())
			if evicted[p.Metadata.UID] {
				continue // evicted, terminating
			}
			switch err := c.evict(ctx, p); {
			case err == nil:
				evicted[p.Metadata.UID] = true
				rep.Evicted = append(rep.Evicted, p.id())
			case errors.Is(err, errBlocked):
				blocked = append(blocked, err.Error())
			default:
				return rep, fmt.Errorf("drain %s: evict %s: %w", node, p.id(), err)
			}
		}
		if len(left) == 0 {
			slices.Sort(rep.Evicted)
			return rep, nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("drain %s: %d pods still on the node after %s: %s", node, len(left), o.Timeout, strings.Join(left, ", "))
			if len(blocked) > 0 {
				msg += "; " + strings.Join(blocked, "; ")
			}
			return rep, errors.New(msg)
		case <-time.After(time.Second):
		}
	}
}

// undoCordon makes the node of a refused drain schedulable again, also
// when the drain's time is up.
func (c *Client) undoCordon(ctx context.Context, e *DrainRefusedError) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.Cordon(ctx, e.Node, false); err != nil {
		e.Cordoned = true
		return errors.Join(e, fmt.Errorf("uncordon %s: %w", e.Node, err))
	}
	return e
}

// skipped lists the pods a drain leaves alone, "ns/name (reason)".
func skipped(pods []Pod) []string {
	var out []string
	for _, p := range pods {
		if why := p.skipReason(); why != "" {
			out = append(out, p.id()+" ("+why+")")
		}
	}
	return out
}

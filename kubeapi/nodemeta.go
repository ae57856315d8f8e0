package kubeapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Annotations that record which labels and taints clusterctl set on a
// node, so that one removed from the spec is removed from the node while
// those others set (kubectl label, the node lifecycle controller) stay.
const (
	ManagedLabelsAnnotation = "clusterctl.io/managed-labels"
	ManagedTaintsAnnotation = "clusterctl.io/managed-taints"
)

// ParseTaint reads "key=value:Effect" or "key:Effect".
func ParseTaint(s string) (Taint, error) {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok || kv == "" {
		return Taint{}, fmt.Errorf("taint %q: want key[=value]:Effect", s)
	}
	switch effect {
	case "NoSchedule", "PreferNoSchedule", "NoExecute":
	default:
		return Taint{}, fmt.Errorf("taint %q: effect must be NoSchedule, PreferNoSchedule or NoExecute", s)
	}
	k, v, _ := strings.Cut(kv, "=")
	return Taint{Key: k, Value: v, Effect: effect}, nil
}

func (t Taint) id() string { return t.Key + ":" + t.Effect }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// NodeMetaPatch computes the merge patch that gives node the wanted labels
// and taints: labels and taints clusterctl set before but no longer wants
// are removed, everything else on the node is kept. ok is false when the
// node already matches.
func NodeMetaPatch(n Node, labels map[string]string, taints []Taint) (patch map[string]any, ok bool) {
	oldLabels := splitList(n.Metadata.Annotations[ManagedLabelsAnnotation])
	oldTaints := splitList(n.Metadata.Annotations[ManagedTaintsAnnotation])

	labelPatch := map[string]any{}
	for k, v := range labels {
		if cur, has := n.Metadata.Labels[k]; !has || cur != v {
			labelPatch[k] = v
		}
	}
	for _, k := range oldLabels {
		if _, want := labels[k]; !want {
			if _, has := n.Metadata.Labels[k]; has {
				labelPatch[k] = nil
			}
		}
	}

	wantIDs := map[string]Taint{}
	for _, t := range taints {
		wantIDs[t.id()] = t
	}
	var newTaints []Taint
	for _, t := range n.Spec.Taints {
		if w, want := wantIDs[t.id()]; want {
			newTaints = append(newTaints, w)
			delete(wantIDs, t.id())
			continue
		}
		if slices.Contains(oldTaints, t.id()) {
			continue // clusterctl set it and the spec no longer has it
		}
		newTaints = append(newTaints, t)
	}
	for _, id := range slices.Sorted(maps.Keys(wantIDs)) {
		newTaints = append(newTaints, wantIDs[id])
	}

	managedLabels := slices.Sorted(maps.Keys(labels))
	var managedTaints []string
	for _, t := range taints {
		managedTaints = append(managedTaints, t.id())
	}
	sort.Strings(managedTaints)
	annPatch := map[string]any{}
	if got := strings.Join(managedLabels, ","); n.Metadata.Annotations[ManagedLabelsAnnotation] != got {
		annPatch[ManagedLabelsAnnotation] = got
	}
	if got := strings.Join(managedTaints, ","); n.Metadata.Annotations[ManagedTaintsAnnotation] != got {
		annPatch[ManagedTaintsAnnotation] = got
	}

	taintsChanged := !slices.Equal(newTaints, n.Spec.Taints)
	if len(labelPatch) == 0 && len(annPatch) == 0 && !taintsChanged {
		return nil, false
	}
	meta := map[string]any{}
	if len(labelPatch) > 0 {
		meta["labels"] = labelPatch
	}
	if len(annPatch) > 0 {
		meta["annotations"] = annPatch
	}
	patch = map[string]any{"metadata": meta}
	if taintsChanged {
		if newTaints == nil {
			newTaints = []Taint{}
		}
		patch["spec"] = map[string]any{"taints": newTaints}
	}
	return patch, true
}

// SyncNodeMeta gives a node the wanted labels and taints (NodeMetaPatch),
// retrying on a conflicting concurrent update: a taint list is replaced
// whole, so the patch names the resourceVersion it was computed from.
func (c *Client) SyncNodeMeta(ctx context.Context, name string, labels map[string]string, taints []Taint) (changed bool, err error) {
	for attempt := 0; ; attempt++ {
		n, err := c.GetNode(ctx, name)
		if err != nil {
			return false, err
		}
		patch, ok := NodeMetaPatch(n, labels, taints)
		if !ok {
			return changed, nil
		}
		patch["metadata"].(map[string]any)["resourceVersion"] = n.Metadata.ResourceVersion
		_, err = c.PatchNode(ctx, name, patch)
		var se *StatusError
		if errors.As(err, &se) && se.Code == http.StatusConflict && attempt < 5 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			return false, err
		}
		changed = true
	}
}

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
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		UID             string            `json:"uid"`
		Annotations     map[string]string `json:"annotations"`
		OwnerReferences []struct {
			Kind       string `json:"kind"`
			Controller bool   `json:"controller"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
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

// Drain cordons a node and evicts its pods (except mirror, DaemonSet and
// finished pods), retrying evictions a PodDisruptionBudget blocks, until
// the pods are gone or the timeout passes. The node stays cordoned; the
// caller uncordons it when it is done.
func (c *Client) Drain(ctx context.Context, node string, timeout time.Duration) (DrainReport, error) {
	var rep DrainReport
	if err := c.Cordon(ctx, node, true); err != nil {
		return rep, fmt.Errorf("cordon %s: %w", node, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	evicted := map[string]bool{}
	for {
		pods, err := c.PodsOnNode(ctx, node)
		if err != nil {
			return rep, fmt.Errorf("drain %s: list pods: %w", node, err)
		}
		var left, blocked []string
		rep.Skipped = rep.Skipped[:0]
		for _, p := range pods {
			if why := p.skipReason(); why != "" {
				rep.Skipped = append(rep.Skipped, p.id()+" ("+why+")")
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
			msg := fmt.Sprintf("drain %s: %d pods still on the node after %s: %s", node, len(left), timeout, strings.Join(left, ", "))
			if len(blocked) > 0 {
				msg += "; " + strings.Join(blocked, "; ")
			}
			return rep, errors.New(msg)
		case <-time.After(time.Second):
		}
	}
}

package addons

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/clusterctl/clusterctl/kubeapi"
)

// CoreDNS is what the cluster DNS add-on is made from.
type CoreDNS struct {
	Image         string // the bundled image, imported on every node
	Version       string
	Replicas      int
	ClusterDomain string     // cluster.local
	ClusterIP     netip.Addr // the kubelets' cluster_dns
	Forward       []string   // resolvers for other names; empty: none
	// ProbeImage, when set, is the bundled echo image: a DaemonSet of it
	// resolves the cluster's API Service name from a pod on every node,
	// and its readiness is the gate's "resolves from every node".
	ProbeImage string
}

// CoreDNS labels and names, the ones kubeadm uses, so that tools and tests
// that look for the cluster DNS find it.
const (
	coreDNSName    = "coredns"
	coreDNSService = "kube-dns"
	coreDNSApp     = "kube-dns" // the k8s-app label
	// CoreDNSHealthPort and CoreDNSReadyPort are the health and ready
	// plugins' ports.
	CoreDNSHealthPort = 8080
	CoreDNSReadyPort  = 8181
)

// Corefile is the CoreDNS configuration: the kubernetes plugin answers the
// cluster domain and the reverse zones (pods by address, as conformance
// expects), other names go to Forward, answers are cached; health, ready
// and prometheus serve probes and metrics.
func (c CoreDNS) Corefile() string {
	var b strings.Builder
	b.WriteString(".:53 {\n    errors\n    health {\n        lameduck 5s\n    }\n    ready\n")
	fmt.Fprintf(&b, "    kubernetes %s in-addr.arpa ip6.arpa {\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }\n", c.ClusterDomain)
	b.WriteString("    prometheus :9153\n")
	if len(c.Forward) > 0 {
		fmt.Fprintf(&b, "    forward . %s {\n        max_concurrent 1000\n    }\n", strings.Join(c.Forward, " "))
	}
	fmt.Fprintf(&b, "    cache 30 {\n        disable success %s\n        disable denial %s\n    }\n", c.ClusterDomain, c.ClusterDomain)
	b.WriteString("    loop\n    reload\n    loadbalance\n}\n")
	return b.String()
}

// Objects are the add-on's objects: RBAC, the Corefile, the Deployment
// (replicas spread over nodes, critical priority, read-only root, only
// NET_BIND_SERVICE), the kube-dns Service at the cluster DNS address and a
// PodDisruptionBudget that keeps one replica through a drain.
func (c CoreDNS) Objects() []kubeapi.Object {
	ns := "kube-system"
	sel := map[string]any{"k8s-app": coreDNSApp}
	meta := func(name string, namespaced bool) map[string]any {
		m := map[string]any{"name": name, "labels": map[string]any{"k8s-app": coreDNSApp}}
		if namespaced {
			m["namespace"] = ns
		}
		return m
	}
	rules := []any{
		map[string]any{"apiGroups": []any{""}, "resources": []any{"endpoints", "services", "pods", "namespaces"}, "verbs": []any{"list", "watch"}},
		map[string]any{"apiGroups": []any{"discovery.k8s.io"}, "resources": []any{"endpointslices"}, "verbs": []any{"list", "watch"}},
	}
	probe := func(path string, port int) map[string]any {
		return map[string]any{"httpGet": map[string]any{"path": path, "port": port, "scheme": "HTTP"}}
	}
	liveness := probe("/health", CoreDNSHealthPort)
	liveness["initialDelaySeconds"], liveness["timeoutSeconds"], liveness["failureThreshold"] = 60, 5, 5
	readiness := probe("/ready", CoreDNSReadyPort)
	readiness["periodSeconds"] = 2
	container := map[string]any{
		"name": coreDNSName, "image": c.Image, "imagePullPolicy": "IfNotPresent",
		"args": []any{"-conf", "/etc/coredns/Corefile"},
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "100m", "memory": "70Mi"},
			"limits":   map[string]any{"memory": "170Mi"},
		},
		"ports": []any{
			map[string]any{"name": "dns", "containerPort": 53, "protocol": "UDP"},
			map[string]any{"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
			map[string]any{"name": "metrics", "containerPort": 9153, "protocol": "TCP"},
		},
		"volumeMounts":   []any{map[string]any{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": true}},
		"livenessProbe":  liveness,
		"readinessProbe": readiness,
		"securityContext": map[string]any{
			"allowPrivilegeEscalation": false,
			"readOnlyRootFilesystem":   true,
			"capabilities":             map[string]any{"add": []any{"NET_BIND_SERVICE"}, "drop": []any{"ALL"}},
		},
	}
	// The Corefile's digest on the pod template: a changed Corefile rolls
	// the replicas, so a broken one fails their start (and the gate)
	// instead of waiting in the ConfigMap for the next restart; the reload
	// plugin would keep the old one running.
	sum := sha256.Sum256([]byte(c.Corefile()))
	pod := map[string]any{
		"metadata": map[string]any{"labels": sel, "annotations": map[string]any{"addons.clusterctl.io/corefile-sha256": hex.EncodeToString(sum[:])}},
		"spec": map[string]any{
			"serviceAccountName": coreDNSName,
			"priorityClassName":  "system-cluster-critical",
			"dnsPolicy":          "Default",
			"nodeSelector":       map[string]any{"kubernetes.io/os": "linux"},
			"tolerations": []any{
				map[string]any{"key": "CriticalAddonsOnly", "operator": "Exists"},
				map[string]any{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
			},
			// One replica per node where there are nodes enough; never
			// blocked where there are not.
			"affinity": map[string]any{"podAntiAffinity": map[string]any{
				"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{
					"weight": 100,
					"podAffinityTerm": map[string]any{
						"labelSelector": map[string]any{"matchLabels": sel},
						"topologyKey":   "kubernetes.io/hostname",
					},
				}},
			}},
			"topologySpreadConstraints": []any{map[string]any{
				"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
				"labelSelector": map[string]any{"matchLabels": sel},
			}},
			"containers": []any{container},
			"volumes": []any{map[string]any{"name": "config-volume", "configMap": map[string]any{
				"name": coreDNSName, "items": []any{map[string]any{"key": "Corefile", "path": "Corefile"}},
			}}},
		},
	}
	objs := []kubeapi.Object{
		{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(coreDNSName, true)},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta("system:coredns", false), "rules": rules},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta("system:coredns", false),
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
			"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": coreDNSName, "namespace": ns}}},
		{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(coreDNSName, true), "data": map[string]any{"Corefile": c.Corefile()}},
		{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(coreDNSName, true), "spec": map[string]any{
			"replicas": c.Replicas,
			"selector": map[string]any{"matchLabels": sel},
			"strategy": map[string]any{"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxUnavailable": 1}},
			"template": pod,
		}},
		{"apiVersion": "v1", "kind": "Service", "metadata": withAnnotations(meta(coreDNSService, true), map[string]any{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}),
			"spec": map[string]any{
				"selector":  sel,
				"clusterIP": c.ClusterIP.String(),
				"ports": []any{
					map[string]any{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
					map[string]any{"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
					map[string]any{"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
				},
			}},
		{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(coreDNSName, true), "spec": map[string]any{
			"maxUnavailable": 1, "selector": map[string]any{"matchLabels": sel},
		}},
	}
	if c.ProbeImage != "" {
		objs = append(objs, c.probe())
	}
	return objs
}

// CoreDNSProbe is the name of the DaemonSet that checks the cluster DNS
// from every node.
const CoreDNSProbe = "coredns-probe"

// probe is a DaemonSet on every node (every taint tolerated) whose pods
// are ready while the API Service's name resolves through the pod's own
// resolv.conf: the path every workload takes (the pod network, the node's
// Service rules, a CoreDNS replica on any node). Tiny, unprivileged, with
// no API credentials.
func (c CoreDNS) probe() kubeapi.Object {
	sel := map[string]any{"k8s-app": CoreDNSProbe}
	name := "kubernetes.default.svc." + c.ClusterDomain + "."
	return kubeapi.Object{"apiVersion": "apps/v1", "kind": "DaemonSet",
		"metadata": map[string]any{"name": CoreDNSProbe, "namespace": "kube-system", "labels": sel},
		"spec": map[string]any{
			"selector":       map[string]any{"matchLabels": sel},
			"updateStrategy": map[string]any{"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxUnavailable": "100%"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": sel},
				"spec": map[string]any{
					"priorityClassName":             "system-node-critical",
					"automountServiceAccountToken":  false,
					"enableServiceLinks":            false,
					"terminationGracePeriodSeconds": 1,
					"nodeSelector":                  map[string]any{"kubernetes.io/os": "linux"},
					"tolerations":                   []any{map[string]any{"operator": "Exists"}},
					"securityContext":               map[string]any{"runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534},
					"containers": []any{map[string]any{
						"name": "probe", "image": c.ProbeImage, "imagePullPolicy": "IfNotPresent",
						"env": []any{map[string]any{"name": "PORT", "value": "8080"}},
						"readinessProbe": map[string]any{
							"exec":          map[string]any{"command": []any{"/echo", "lookup", name}},
							"periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 2,
						},
						"resources": map[string]any{
							"requests": map[string]any{"cpu": "1m", "memory": "8Mi"},
							"limits":   map[string]any{"memory": "32Mi"},
						},
						"securityContext": map[string]any{
							"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
							"capabilities": map[string]any{"drop": []any{"ALL"}},
						},
					}},
				},
			},
		},
	}
}

func withAnnotations(m map[string]any, a map[string]any) map[string]any {
	m["annotations"] = a
	return m
}

// CoreDNSService is the Service the DNS check resolves through.
func CoreDNSService() (namespace, name string) { return "kube-system", coreDNSService }

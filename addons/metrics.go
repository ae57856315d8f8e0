package addons

import "github.com/clusterctl/clusterctl/kubeapi"

// MetricsServer is what the resource metrics add-on is made from.
type MetricsServer struct {
	Image    string
	Replicas int
}

// Objects are metrics-server's: RBAC for reading the kubelets' metrics and
// for delegated authentication, the Deployment, its Service and the
// APIService v1beta1.metrics.k8s.io through which the aggregation layer
// serves `kubectl top`. The kubelets' serving certificates are verified
// with the cluster CA (the kube-root-ca.crt ConfigMap of kube-system): no
// --kubelet-insecure-tls. The APIService skips verifying metrics-server's
// own certificate, which it makes itself at start (as upstream's manifest
// does): the aggregator reaches it through its Service.
func (m MetricsServer) Objects() []kubeapi.Object {
	const ns, name = "kube-system", "metrics-server"
	sel := map[string]any{"k8s-app": name}
	meta := func(n string, namespaced bool) map[string]any {
		md := map[string]any{"name": n, "labels": map[string]any{"k8s-app": name}}
		if namespaced {
			md["namespace"] = ns
		}
		return md
	}
	sa := []any{map[string]any{"kind": "ServiceAccount", "name": name, "namespace": ns}}
	ref := func(kind, n string) map[string]any {
		return map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": n}
	}
	reader := meta("system:aggregated-metrics-reader", false)
	reader["labels"].(map[string]any)["rbac.authorization.k8s.io/aggregate-to-view"] = "true"
	reader["labels"].(map[string]any)["rbac.authorization.k8s.io/aggregate-to-edit"] = "true"
	reader["labels"].(map[string]any)["rbac.authorization.k8s.io/aggregate-to-admin"] = "true"
	https := func(path string) map[string]any {
		return map[string]any{"httpGet": map[string]any{"path": path, "port": "https", "scheme": "HTTPS"}, "periodSeconds": 10, "failureThreshold": 3}
	}
	readiness := https("/readyz")
	readiness["initialDelaySeconds"] = 5
	container := map[string]any{
		"name": name, "image": m.Image, "imagePullPolicy": "IfNotPresent",
		"args": []any{
			"--cert-dir=/tmp", "--secure-port=10250",
			"--kubelet-preferred-address-types=InternalIP",
			"--kubelet-use-node-status-port",
			"--kubelet-certificate-authority=/etc/kubernetes-ca/ca.crt",
			"--metric-resolution=15s",
		},
		"ports":          []any{map[string]any{"name": "https", "containerPort": 10250, "protocol": "TCP"}},
		"readinessProbe": readiness,
		"livenessProbe":  https("/livez"),
		"resources":      map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "200Mi"}},
		"securityContext": map[string]any{
			"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
			"runAsNonRoot": true, "runAsUser": 1000,
			"capabilities":   map[string]any{"drop": []any{"ALL"}},
			"seccompProfile": map[string]any{"type": "RuntimeDefault"},
		},
		"volumeMounts": []any{
			map[string]any{"name": "tmp-dir", "mountPath": "/tmp"},
			map[string]any{"name": "cluster-ca", "mountPath": "/etc/kubernetes-ca", "readOnly": true},
		},
	}
	return []kubeapi.Object{
		{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, true)},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": reader, "rules": []any{
			map[string]any{"apiGroups": []any{"metrics.k8s.io"}, "resources": []any{"pods", "nodes"}, "verbs": []any{"get", "list", "watch"}},
		}},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta("system:metrics-server", false), "rules": []any{
			map[string]any{"apiGroups": []any{""}, "resources": []any{"nodes/metrics"}, "verbs": []any{"get"}},
			map[string]any{"apiGroups": []any{""}, "resources": []any{"pods", "nodes"}, "verbs": []any{"get", "list", "watch"}},
		}},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("metrics-server-auth-reader", true),
			"roleRef": ref("Role", "extension-apiserver-authentication-reader"), "subjects": sa},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta("metrics-server:system:auth-delegator", false),
			"roleRef": ref("ClusterRole", "system:auth-delegator"), "subjects": sa},
		{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta("system:metrics-server", false),
			"roleRef": ref("ClusterRole", "system:metrics-server"), "subjects": sa},
		{"apiVersion": "v1", "kind": "Service", "metadata": meta(name, true), "spec": map[string]any{
			"selector": sel,
			"ports":    []any{map[string]any{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}},
		}},
		{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, true), "spec": map[string]any{
			"replicas": m.Replicas,
			"selector": map[string]any{"matchLabels": sel},
			"strategy": map[string]any{"rollingUpdate": map[string]any{"maxUnavailable": 0}},
			"template": map[string]any{
				// Its emptyDir holds only the serving certificate it makes
				// at start: a drain may evict it without
				// drain_delete_emptydir_data (kubeapi.SafeToEvictVolumesAnnotation).
				"metadata": map[string]any{"labels": sel, "annotations": map[string]any{
					"cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes": "tmp-dir",
				}},
				"spec": map[string]any{
					"serviceAccountName": name,
					"priorityClassName":  "system-cluster-critical",
					"nodeSelector":       map[string]any{"kubernetes.io/os": "linux"},
					"tolerations": []any{
						map[string]any{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
					},
					"containers": []any{container},
					"volumes": []any{
						map[string]any{"name": "tmp-dir", "emptyDir": map[string]any{}},
						map[string]any{"name": "cluster-ca", "configMap": map[string]any{"name": "kube-root-ca.crt"}},
					},
				},
			},
		}},
		{"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": meta("v1beta1.metrics.k8s.io", false), "spec": map[string]any{
			"group": "metrics.k8s.io", "version": "v1beta1",
			"service":               map[string]any{"name": name, "namespace": ns},
			"groupPriorityMinimum":  100,
			"versionPriority":       100,
			"insecureSkipTLSVerify": true,
		}},
	}
}

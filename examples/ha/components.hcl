# Versions come from kubernetes_version unless a component pins one.

component "kube-apiserver" {
  extra_args = {
    "audit-log-maxage"    = "30"
    "audit-log-maxbackup" = "10"
  }
}

component "kube-controller-manager" {
  extra_args = {
    "node-cidr-mask-size" = "24"
  }
}

component "kubelet" {
  extra_args = {
    "max-pods" = "150"
  }
}

# The cluster part of a lab spec. `clusterctl lab up` writes lab.hcl (SSH
# settings and the hosts) into a folder; copy this file next to it. Both
# files are read together: every *.hcl file of a folder is one spec.

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes release to install; set -var kubernetes_version=1.36.3 to start one minor lower and test an upgrade."
  default     = "1.37.2"
}

cluster "lab" {
  kubernetes_version = var.kubernetes_version
  pod_cidr           = "10.244.0.0/16"
  service_cidr       = "10.96.0.0/12"
}

# extra_args add or override flags. clusterctl keeps audit logs 30 days
# by default (CIS 1.2.17); a lab might keep them longer, never shorter.
component "kube-apiserver" {
  extra_args = {
    "audit-log-maxage" = "30"
  }
}

# A one-machine cluster: etcd, the control plane and your workloads share
# one host. Validate with `clusterctl -chdir=examples/single-node validate`.

variable "address" {
  type        = string
  description = "IP address of the machine; clusterctl reaches it over SSH."
  default     = "192.168.56.10"
}

cluster "single" {
  kubernetes_version = "1.37.2"
  # pod_cidr, service_cidr and cluster_dns keep their defaults:
  # 10.244.0.0/16, 10.96.0.0/12 and 10.96.0.10.
}

ssh {
  user           = "root"
  identity_files = ["~/.ssh/id_ed25519"]
}

host "node-1" {
  address = var.address
  roles   = ["control-plane", "etcd", "worker"]
}

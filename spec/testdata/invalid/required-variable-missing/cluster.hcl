variable "address" {
  type        = string
  description = "The node's IP."
}

cluster "demo" {
  kubernetes_version = "1.37.2"
}

host "cp-1" {
  address = var.address
  roles   = ["control-plane", "etcd", "worker"]
}

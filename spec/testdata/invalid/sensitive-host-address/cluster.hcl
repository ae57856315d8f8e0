variable "private_ip" {
  type      = string
  sensitive = true
}

cluster "demo" {
  kubernetes_version = "1.37.2"
}

host "cp-1" {
  address = var.private_ip
  roles   = ["control-plane", "etcd", "worker"]
}

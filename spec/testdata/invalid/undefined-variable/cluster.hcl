variable "address" {
  default = "10.0.0.11"
}

cluster "demo" {
  kubernetes_version = "1.37.2"
}

host "cp-1" {
  address = var.adress
  roles   = ["control-plane", "etcd", "worker"]
}

variable "subnet" {
  type    = string
  default = "10.0.0.0/24"
}

cluster "demo" {
  kubernetes_version = "1.37.2"
  pod_cidr           = var.subnet
}

host "cp-1" {
  address = "10.0.0.11"
  roles   = ["control-plane", "etcd", "worker"]
}

variable "subnet_prefix" {
  type    = string
  default = "10.0.0"

  validation {
    condition     = length(split(".", var.subnet_prefix)) == 3
    error_message = "subnet_prefix is the first three octets of the hosts' network, like \"10.0.0\"."
  }
}

cluster "demo" {
  kubernetes_version = "1.37.2"
}

host "cp-1" {
  address = "${var.subnet_prefix}.11"
  roles   = ["control-plane", "etcd", "worker"]
}

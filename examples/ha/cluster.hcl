# A highly available cluster: three control-plane hosts that also run the
# etcd members, two workers, and a load balancer (not managed by
# clusterctl) in front of the API servers. The spec is split over three
# files; clusterctl reads every *.hcl file of the folder as one spec.

variable "subnet" {
  type        = string
  description = "The hosts' network; host addresses are numbered from it."
  default     = "10.0.1.0/24"

  validation {
    condition     = can(cidrhost(var.subnet, 30))
    error_message = "The subnet must be a CIDR range with room for at least 30 hosts."
  }
}

variable "ssh_user" {
  type        = string
  description = "Login user on every host; it needs passwordless sudo."
  default     = "admin"
}

locals {
  api_vip = cidrhost(var.subnet, 10)
}

cluster "ha" {
  kubernetes_version = "1.37.2"
  pod_cidr           = "10.244.0.0/16"
  service_cidr       = "10.96.0.0/12"
  cluster_dns        = "10.96.0.10"
  api_endpoint       = "${local.api_vip}:6443"
}

ssh {
  user             = var.ssh_user
  identity_files   = ["~/.ssh/id_ed25519"]
  known_hosts_file = "~/.ssh/known_hosts"
  host_key_policy  = "strict"
  sudo             = true
  connect_timeout  = "15s"

  bastion {
    address = "bastion.example.net"
    user    = "jump"
  }
}

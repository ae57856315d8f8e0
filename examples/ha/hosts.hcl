host "cp-1" {
  address = cidrhost(var.subnet, 11)
  roles   = ["control-plane", "etcd"]
}

host "cp-2" {
  address = cidrhost(var.subnet, 12)
  roles   = ["control-plane", "etcd"]
}

host "cp-3" {
  address = cidrhost(var.subnet, 13)
  roles   = ["control-plane", "etcd"]
}

host "worker-1" {
  address = cidrhost(var.subnet, 21)
  roles   = ["worker"]
  labels = {
    "topology.kubernetes.io/zone" = "a"
  }
}

host "worker-2" {
  address = cidrhost(var.subnet, 22)
  roles   = ["worker"]
  labels = {
    "topology.kubernetes.io/zone" = "b"
    "example.com/gpu"             = "true"
  }
  taints = ["example.com/gpu=true:NoSchedule"]
}

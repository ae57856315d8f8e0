cluster "demo" {
  kubernetes_version = "1.37.2"
  pod_cidr           = "10.244.1.0/16"
}

host "cp-1" {
  address = "10.0.0.11"
  roles   = ["control-plane", "etcd"]
}

host "worker-1" {
  address = "10.0.0.12"
  roles   = ["worker"]
}

host "worker-2" {
  address = "10.0.0.13"
  roles   = ["worker"]
}

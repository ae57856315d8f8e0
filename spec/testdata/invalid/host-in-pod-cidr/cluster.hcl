cluster "demo" {
  kubernetes_version = "1.37.2"
}

host "cp-1" {
  address = "10.244.3.11"
  roles   = ["control-plane", "etcd"]
}

host "worker-1" {
  address = "10.0.0.12"
  roles   = ["worker"]
}

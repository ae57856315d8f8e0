cluster "demo" {
  kubernetes_version = "1.37.2"
}

host "cp-1" {
  address = host.cp.address
  roles   = ["control-plane", "etcd", "worker"]
}

cluster "demo" {
  kubernetes_version = "1.37.2"
}

host "node-1" {
  address = "10.0.0.11"
  roles   = ["etcd", "worker"]
}

cluster "demo" {
  kubernetes_version = "1.37.2"
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

image "app" {
  archive = "no-such-image.tar"
}

host "worker-2" {
  address = "10.0.0.14"
  roles   = ["worker"]
}

component "kubelet" {
  version = "1.37.2"
}

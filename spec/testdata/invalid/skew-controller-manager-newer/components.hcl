component "kube-controller-manager" {
  version = "1.37.2"
}

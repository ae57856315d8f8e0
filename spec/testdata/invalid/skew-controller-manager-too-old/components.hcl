component "kube-controller-manager" {
  version = "1.35.4"
}

cluster "demo2" {
  kubernetes_version = "1.36.3"
}

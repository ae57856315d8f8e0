cluster "demo" {
  kubernetes_version = "1.37.2"
}

ssh {
  user           = "root"
  identity_files = ["~/.ssh/id_ed25519"]
}

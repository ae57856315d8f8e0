ssh {
  user           = "root"
  identity_files = ["~/.ssh/id_ed25519"]
}

# Written by sshconfig2hcl from `vagrant ssh-config`. Recreated VMs have new
# host keys: after `vagrant destroy`, delete vagrant_known_hosts and run it again.
ssh {
  user             = "vagrant"
  identity_files   = ["/home/dev/.vagrant.d/insecure_private_keys/vagrant.key.ed25519", "/home/dev/.vagrant.d/insecure_private_keys/vagrant.key.rsa"]
  known_hosts_file = "vagrant_known_hosts"
  host_key_policy  = "accept-new"
  sudo             = true
}

host "cp-1" {
  address = "192.168.56.11"
  roles   = ["control-plane", "etcd"]
}

host "worker-1" {
  address = "192.168.56.12"
  roles   = ["worker"]
}

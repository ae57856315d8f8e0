# Written by sshconfig2hcl from `vagrant ssh-config`. Recreated VMs have new
# host keys: after `vagrant destroy`, delete vagrant_known_hosts and run it again.
ssh {
  user             = "vagrant"
  known_hosts_file = "vagrant_known_hosts"
  host_key_policy  = "accept-new"
  sudo             = true
}

host "cp-1" {
  address          = "127.0.0.1"
  port             = 2222
  internal_address = "192.168.56.11"
  roles            = ["control-plane", "etcd"]
  ssh {
    identity_files = ["/home/dev/clusterctl/test/vagrant/.vagrant/machines/cp-1/virtualbox/private_key"]
  }
}

host "worker-1" {
  address          = "127.0.0.1"
  port             = 2200
  internal_address = "192.168.56.12"
  roles            = ["worker"]
  ssh {
    identity_files = ["/home/dev/clusterctl/test/vagrant/.vagrant/machines/worker-1/virtualbox/private_key"]
  }
}

host "worker-2" {
  address          = "127.0.0.1"
  port             = 2201
  internal_address = "192.168.56.13"
  roles            = ["worker"]
  ssh {
    identity_files = ["/home/dev/clusterctl/test/vagrant/.vagrant/machines/worker-2/virtualbox/private_key"]
  }
}

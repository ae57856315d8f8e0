# Written by sshconfig2hcl from `vagrant ssh-config`. Recreated VMs have new
# host keys: after `vagrant destroy`, delete vagrant_known_hosts and run it again.
ssh {
  user             = "vagrant"
  known_hosts_file = "vagrant_known_hosts"
  host_key_policy  = "accept-new"
  sudo             = true
}

host "cp-1" {
  address          = "192.168.121.47"
  internal_address = "192.168.56.11"
  roles            = ["control-plane", "etcd"]
  ssh {
    identity_files = ["/home/dev/My Projects/clusterctl/test/vagrant/.vagrant/machines/cp-1/libvirt/private_key"]
  }
}

host "worker-1" {
  address          = "192.168.121.212"
  internal_address = "192.168.56.12"
  roles            = ["worker"]
  ssh {
    identity_files = ["/home/dev/My Projects/clusterctl/test/vagrant/.vagrant/machines/worker-1/libvirt/private_key"]
  }
}

host "worker-2" {
  address          = "192.168.121.98"
  internal_address = "192.168.56.13"
  roles            = ["worker"]
  ssh {
    identity_files = ["/home/dev/My Projects/clusterctl/test/vagrant/.vagrant/machines/worker-2/libvirt/private_key"]
  }
}

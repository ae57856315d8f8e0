# Written by `clusterctl lab up`; `clusterctl lab down` removes it. A copy
# for a lab of 1 control plane and 2 workers on the default subnet
# 10.200.0.0/24, so that this example validates on its own.
ssh {
  user             = "root"
  identity_files   = ["id_ed25519"]
  known_hosts_file = "known_hosts"
  host_key_policy  = "strict"
}

host "cp-1" {
  address = "10.200.0.11"
  roles   = ["control-plane", "etcd"]
}

host "worker-1" {
  address = "10.200.0.12"
  roles   = ["worker"]
}

host "worker-2" {
  address = "10.200.0.13"
  roles   = ["worker"]
}

#!/usr/bin/env bash
# Brings a fresh Debian/Ubuntu machine (as root, in a clone of this
# repository) to a 3-node lab cluster: 1 control plane and 2 workers on
# local lab hosts, with examples/lab/cluster.hcl, and prints
# `kubectl get nodes -o wide`. Safe to run again: what exists is reused and
# the apply changes nothing.
#
#   scripts/lab-cluster.sh            # the lab in ./mylab (make cluster)
#   DIR=/tmp/mylab SUBNET=10.210.0.0/24 scripts/lab-cluster.sh
#
# Remove everything again with: bin/clusterctl lab down --dir "${DIR:-mylab}" (make cluster-down)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
DIR=${DIR:-mylab}
SUBNET=${SUBNET:-}

step() { printf '\n==> %s\n' "$*"; }

step "Debian packages and Go modules (scripts/setup.sh)"
bash scripts/setup.sh

step "clusterctl and the component bundle (the first time takes a while: everything is built from source)"
make build
make bundle

if [ -f "$DIR/lab.json" ]; then
  step "lab in $DIR exists; reusing it"
  bin/clusterctl lab status --dir "$DIR"
else
  step "lab: 1 control plane + 2 workers in $DIR"
  bin/clusterctl lab up --dir "$DIR" --control-planes 1 --workers 2 ${SUBNET:+--subnet "$SUBNET"}
fi
cp examples/lab/cluster.hcl "$DIR/cluster.hcl"

step "clusterctl apply"
bin/clusterctl -chdir="$DIR" apply -auto-approve

step "kubeconfig in $DIR/admin.conf"
bin/clusterctl -chdir="$DIR" kubeconfig -o "$DIR/admin.conf"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/clusterctl/artifacts
version=$(sed -n 's/^ *default *= *"\([0-9.]*\)".*/\1/p' examples/lab/cluster.hcl | head -n1)
kubectl=$cache/kubectl/$version/linux-amd64/kubectl

step "kubectl get nodes -o wide"
"$kubectl" --kubeconfig "$DIR/admin.conf" get nodes -o wide

step "kubectl get pods -A -o wide (the add-ons: CoreDNS, metrics-server)"
"$kubectl" --kubeconfig "$DIR/admin.conf" get pods -A -o wide
cat <<MSG

kubectl:  $kubectl --kubeconfig $DIR/admin.conf ...
status:   bin/clusterctl -chdir=$DIR status
remove:   bin/clusterctl lab down --dir $DIR
MSG

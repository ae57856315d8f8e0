#!/usr/bin/env bash
# Installs what clusterctl's build, lab and tests need on Debian/Ubuntu.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

pkgs=(
  openssh-server openssh-client   # lab hosts run real sshd; tests compare with ssh
  iproute2 iptables conntrack     # lab networking, kube-proxy
  libseccomp-dev pkg-config gcc   # runc is built with seccomp (cgo)
  sudo procps psmisc kmod util-linux git make ca-certificates
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  echo "setup: add /usr/local/go/bin to PATH" >&2
fi
go version >/dev/null
go mod download

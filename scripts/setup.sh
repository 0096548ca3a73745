#!/usr/bin/env bash
# Take a Debian machine from nothing to a working nodemesh checkout: system packages, kernel headers
# for BCC, and a virtualenv at .venv with nodemesh installed and BCC importable.
# Safe to run again: each step checks first, so a second run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  iproute2 nftables procps psmisc util-linux curl ca-certificates
  python3-bpfcc linux-headers-amd64
  redis-server redis-tools nginx-light nghttp2-client stunnel4 iperf3 tcpdump
  prometheus
)

log() { printf '[setup] %s\n' "$*"; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "setup: nodemesh's local cluster needs root (network namespaces, cgroups, eBPF); run as root" >&2
    exit 1
  fi
}

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package scripts may start these daemons; nodemesh runs its own copies inside pods.
  for svc in redis-server nginx stunnel4 prometheus; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
}

# BCC compiles against /lib/modules/$(uname -r)/build. This kernel ships no headers package of its
# own, so point build/ and source/ at Debian's newest headers (UAPI headers are what the programs use).
link_kernel_headers() {
  local kdir="/lib/modules/$(uname -r)"
  local arch common
  arch=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1 || true)
  common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$arch" ] || [ -z "$common" ]; then
    echo "setup: no Debian kernel headers under /usr/src (linux-headers-amd64 did not install)" >&2
    exit 1
  fi
  mkdir -p "$kdir"
  [ "$(readlink "$kdir/build" || true)" = "$arch" ] || ln -sfn "$arch" "$kdir/build"
  [ "$(readlink "$kdir/source" || true)" = "$common" ] || ln -sfn "$common" "$kdir/source"
}

make_venv() {
  local py=${PYTHON:-python3}
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $($py --version)"
    "$py" -m venv .venv
  fi
  local stamp=.venv/.nodemesh-installed want
  # The editable install maps the top-level packages that existed when it ran: a new package
  # (e.g. node_agent/) needs a reinstall just as a dependency change does.
  want=$( (cat pyproject.toml; ls -d */__init__.py 2>/dev/null) | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    log "installing nodemesh and its dependencies into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[dev]'
    echo "$want" >"$stamp"
  fi
}

# Debian's BCC is a pure-Python package over libbcc. Expose only the bcc package to the venv (not
# the rest of dist-packages, whose versions would shadow the venv's) through a .pth path entry.
expose_bcc() {
  local src=/usr/lib/python3/dist-packages/bcc
  [ -d "$src" ] || { echo "setup: $src missing (python3-bpfcc did not install)" >&2; exit 1; }
  local dir=.venv/bcc-path site
  mkdir -p "$dir"
  [ "$(readlink "$dir/bcc" || true)" = "$src" ] || ln -sfn "$src" "$dir/bcc"
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$(pwd)/$dir" >"$site/nodemesh-bcc.pth"
  .venv/bin/python -c 'import bcc' || { echo "setup: bcc does not import from .venv" >&2; exit 1; }
}

need_root
install_apt
link_kernel_headers
make_venv
expose_bcc
log "ready: .venv/bin/meshctl"

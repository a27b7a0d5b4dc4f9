#!/usr/bin/env bash
# Installs what trendstream's demo and tests need and the machine lacks; does nothing when all
# is there. Debian-based machine, as root (or with sudo), with crates.io and Debian packages.
set -euo pipefail

TANSU_VERSION=0.6.0
export PATH="$HOME/.cargo/bin:$PATH"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v setpriv >/dev/null || need+=(util-linux)
command -v cc >/dev/null || need+=(build-essential)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
# librdkafka is built with TLS (OpenSSL); the tests put a TLS terminator (socat) in front of
# the broker and make their certificates with openssl.
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
command -v socat >/dev/null || need+=(socat)
command -v openssl >/dev/null || need+=(openssl)
# The live page's test renders it in headless Chromium.
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  apt_install "${need[@]}"
fi

# scripts/validate-deploy.sh: promtool (Debian's prometheus), a Compose CLI (Debian's
# docker-compose checks a compose file without a container engine), and kubernetes-validate
# (PyPI) in a virtual environment under target/.
deploy_need=()
command -v promtool >/dev/null || deploy_need+=(prometheus)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || deploy_need+=(docker-compose)
python3 -c 'import ensurepip' 2>/dev/null || deploy_need+=(python3-venv)
if [ ${#deploy_need[@]} -gt 0 ]; then
  echo "setup: installing ${deploy_need[*]}"
  apt_install --no-install-recommends "${deploy_need[@]}"
fi
KUBERNETES_VALIDATE_VERSION=1.37.0
deploy_venv="$(dirname "$0")/../target/deploy-venv"
if [ "$("$deploy_venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$KUBERNETES_VALIDATE_VERSION" ]; then
  echo "setup: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION in target/deploy-venv"
  python3 -m venv "$deploy_venv"
  "$deploy_venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing: install Rust (rustup) first" >&2
  exit 1
fi

if [ "$(tansu --version 2>/dev/null)" != "tansu $TANSU_VERSION" ]; then
  echo "setup: installing the tansu broker $TANSU_VERSION (about 10 minutes, once)"
  cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore,libsql
fi

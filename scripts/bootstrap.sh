#!/usr/bin/env bash
# Installs everything facmon needs on a fresh Debian 12 machine, idempotently:
# the system servers it runs and tests against (as root, or with sudo) and the Python
# package with its dependencies in ./.venv. Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the servers facmon supervises in `facmon up` and its tests start on free ports.
# policy-rc.d keeps apt from starting them as system services: facmon starts its own.
# gcc, libc6-dev and python3-dev build the collector's C kernel (core/_reading_kernel.c) at install.
# gammu (the command line) checks a GSM modem by hand (`gammu identify`); libgammu-dev and pkg-config
# build python-gammu where PyPI has no wheel for the machine.
DEB_PACKAGES=(mosquitto mosquitto-clients influxdb nginx-light prometheus-alertmanager
              python3 python3-venv python3-pip python3-dev gcc libc6-dev ca-certificates chromium
              gammu libgammu-dev pkg-config openssl)

need_binary() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "bootstrap: need root or sudo to install: ${missing[*]}" >&2; exit 1; fi
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  policy_created=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d; policy_created=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  [ "$policy_created" -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi
for bin in mosquitto influxd nginx prometheus-alertmanager; do
  need_binary "$bin" || { echo "bootstrap: $bin missing after install" >&2; exit 1; }
done

# Python: a venv with facmon installed editable, reinstalled when pyproject.toml changes.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Reinstalled (which also rebuilds the C kernel in place) when the project's build inputs change or
# the built kernel is missing.
stamp=.venv/.facmon-installed
kernel_built() { compgen -G "core/_reading_kernel*.so" >/dev/null; }
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] \
   || [ core/_reading_kernel.c -nt "$stamp" ] || ! kernel_built; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

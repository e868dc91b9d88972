#!/usr/bin/env bash
# Install headless Chromium (Debian package) for the browser tests of the HTML report.
# Idempotent: does nothing when `chromium` is already on PATH. Needs root (or sudo) for apt.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  echo "install-chromium: $(command -v chromium) already installed" >&2
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-chromium: error: need root or sudo to apt-get install chromium" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-chromium: installing chromium with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium
command -v chromium >/dev/null 2>&1 || { echo "install-chromium: error: chromium not on PATH after install" >&2; exit 1; }

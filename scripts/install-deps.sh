#!/usr/bin/env bash
# Installs the system packages alpine and its tests use (Debian/Ubuntu):
#   git        clones and exports workspaces
#   ripgrep    OpenCode's search tool (otherwise it tries to download one)
#   bubblewrap isolation of local sandboxes
#   chromium   the browser smoke test of the web UI (tests only)
#   docker.io  the docker provider's tests: a private dockerd (tests only)
#   debootstrap  an offline Debian base image for those tests (tests only)
# Already-installed packages are skipped, so it is cheap to re-run.
set -euo pipefail
packages=(git ripgrep bubblewrap)
if [ "${1:-}" = "--with-test-deps" ]; then packages+=(chromium docker.io debootstrap); fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages present: ${packages[*]}"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing: ${missing[*]}"
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

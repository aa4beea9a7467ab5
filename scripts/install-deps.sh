#!/usr/bin/env bash
# Installs Node.js when the machine's is too old, and the system packages alpine and its tests
# use (Debian/Ubuntu):
#   git        clones and exports workspaces
#   ripgrep    OpenCode's search tool (otherwise it tries to download one)
#   bubblewrap isolation of local sandboxes
#   chromium   the browser smoke test of the web UI (tests only)
#   docker.io  the docker provider's tests: a private dockerd (tests only)
#   debootstrap  an offline Debian base image for those tests (tests only)
# Already-installed packages are skipped, so it is cheap to re-run.
set -euo pipefail
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
packages=(git ripgrep bubblewrap)
if [ "${1:-}" = "--with-test-deps" ]; then packages+=(chromium docker.io debootstrap); fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages present: ${packages[*]}"
else
  echo "installing: ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js: alpine runs on the current LTS line (24; 22 at least). A machine whose Node is older
# (Debian 12 ships 20) gets the official build from the npm registry's node-linux-<arch> package
# (npm checks its integrity) in /usr/local, which comes before /usr/bin on PATH. Its headers go
# along and npm's nodedir points there, so a native addon built from source (node-gyp) matches
# that Node (better-sqlite3 ships prebuilt addons and builds nothing on linux x64/arm64).
node_min_major=22
node_version=24.22.3
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt "$node_min_major" ]; then
  case "$(uname -m)" in
    x86_64) node_arch=x64 ;;
    aarch64 | arm64) node_arch=arm64 ;;
    *) echo "no Node.js $node_version build for $(uname -m): install Node.js >= $node_min_major yourself" >&2; exit 1 ;;
  esac
  echo "installing Node.js $node_version in /usr/local (this machine has $(node --version 2>/dev/null || echo none))"
  node_tmp=$(mktemp -d)
  trap 'rm -rf "$node_tmp"' EXIT
  (cd "$node_tmp" && npm pack --silent "node-linux-$node_arch@$node_version" >/dev/null)
  tar -xzf "$node_tmp"/node-linux-*.tgz -C "$node_tmp"
  $sudo mkdir -p /usr/local/bin /usr/local/include
  # install(1) replaces the file instead of writing into it: an old node may be running from it.
  $sudo install -m 0755 "$node_tmp/package/bin/node" /usr/local/bin/node
  $sudo rm -rf /usr/local/include/node
  $sudo cp -r "$node_tmp/package/include/node" /usr/local/include/node
  hash -r
fi
installed_node=$(command -v node)
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt "$node_min_major" ]; then
  echo "node on PATH is still $(node --version) ($installed_node): put /usr/local/bin before $(dirname "$installed_node") on PATH" >&2
  exit 1
fi
node_prefix=$(dirname "$(dirname "$installed_node")")
if [ -f "$node_prefix/include/node/node_version.h" ] && [ "$(npm config get nodedir 2>/dev/null)" != "$node_prefix" ]; then
  # Without this, node-gyp would build addons against another Node's headers (or try to download
  # them). npm 11 no longer sets this key with `npm config set`, so the user's npmrc is edited.
  npmrc=$(npm config get userconfig)
  touch "$npmrc"
  sed -i '/^nodedir *=/d' "$npmrc"
  echo "nodedir=$node_prefix" >>"$npmrc"
fi
echo "node $(node --version) at $installed_node"

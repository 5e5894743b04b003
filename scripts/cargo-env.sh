#!/bin/sh
# Runs a command (cargo, or napi which runs cargo) after making sure cargo can
# resolve crates: when Debian's packaged registry is installed and crates.io is
# not wanted, writes .cargo/config.toml (not committed) pointing at it.
# Set VHOST_USER_NET_CRATES_IO=1 to build from crates.io instead.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEBIAN_REGISTRY=/usr/share/cargo/registry
if [ -z "$VHOST_USER_NET_CRATES_IO" ] && [ -d "$DEBIAN_REGISTRY" ] && [ ! -f "$ROOT/.cargo/config.toml" ]; then
  mkdir -p "$ROOT/.cargo"
  cat > "$ROOT/.cargo/config.toml" <<CONF
# Written by scripts/cargo-env.sh: build from Debian's packaged crates.
[source.crates-io]
replace-with = "debian-registry"
[source.debian-registry]
directory = "$DEBIAN_REGISTRY"
[net]
offline = true
CONF
fi
exec "$@"

#!/bin/bash
# The whole test suite, from a fresh clone: installs what it needs, builds, runs every tier, and
# prints one closing line `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never FORCE_COLOR=0
passed=0 failed=0
step() { # step NAME COMMAND… — runs one tier, counts it
  local name=$1; shift
  echo "=== $name: $*"
  if "$@"; then passed=$((passed + 1)); echo "=== $name: ok"; else failed=$((failed + 1)); echo "=== $name: FAILED"; fi
}
set -e
scripts/ensure-system-deps.sh test
npm ci --no-audit --no-fund
set +e
step "rust unit tests" scripts/cargo-env.sh cargo test --workspace --release
step "typecheck" npx tsc --noEmit
step "typescript suites (unit, end-to-end, QEMU, DPDK)" npx ava
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

#!/bin/bash
# The whole test suite, from a fresh clone: installs what it needs (Debian packages, npm
# packages, the addon build), then runs every tier and prints one closing line
# `N passed, N failed` that adds up the tests of all tiers.
#   1. Rust unit tests + fuzz loops (cargo test)
#   2. TypeScript unit tests: codec, session, state channel, harness helpers (ava)
#   3. In-process end-to-end: test front-end ↔ back-end ↔ TAP (ava)
#   4. Real peers: QEMU 7.2 guests and DPDK testpmd (ava, one file at a time: they load both CPUs)
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never FORCE_COLOR=0
LOG_DIR=.test-artifacts/test-all
mkdir -p "$LOG_DIR"
passed=0 failed=0 broken_tiers="" failed_logs=""

# tier NAME LOGFILE COMMAND… — runs one tier (output shown and kept), adds up its test counts.
tier() {
  local name=$1 log=$2; shift 2
  echo "=== $name: $*"
  "$@" 2>&1 | tee "$log"
  local status=${PIPESTATUS[0]}
  local p f
  # cargo: "test result: ok. N passed; M failed"; ava (not a TTY): one ✔ or ✘ line per test.
  p=$( (grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$log" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+'; echo "$(grep -Ec '^ *✔' "$log")") | awk '{s+=$1} END {print s+0}')
  f=$( (grep -Eo '[0-9]+ failed;' "$log" | grep -Eo '[0-9]+'; echo "$(grep -Ec '^ *✘' "$log")") | awk '{s+=$1} END {print s+0}')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$status" != 0 ]; then
    broken_tiers="$broken_tiers [$name]"
    # A tier that fails without counting a failed test (a crash, a compile error) still counts as one.
    [ "${f:-0}" = 0 ] && failed=$((failed + 1))
    failed_logs="$failed_logs $log"
  fi
  echo "=== $name: exit $status"
}

scripts/ensure-system-deps.sh test || exit 1
npm ci --no-audit --no-fund || exit 1

UNIT_TESTS=(test/protocol test/backend test/cli test/fuzz test/switch test/helpers test/migration test/bench test/native.test.ts test/e2e)
REAL_TESTS=(test/real)

# Every test file belongs to a tier: one outside them all (a new directory) would never run.
for file in $(find test -name '*.test.ts'); do
  covered=""
  for path in "${UNIT_TESTS[@]}" "${REAL_TESTS[@]}"; do
    [[ "$file" == "$path" || "$file" == "$path"/* ]] && covered=yes
  done
  if [ -z "$covered" ]; then
    echo "$file is in no test tier: add its directory to scripts/test-all.sh"
    failed=$((failed + 1)) broken_tiers="$broken_tiers [tier lists]"
  fi
done

tier "rust" "$LOG_DIR/rust.log" scripts/cargo-env.sh cargo test --workspace --release
tier "typecheck" "$LOG_DIR/typecheck.log" npx tsc --noEmit
tier "typescript unit + in-process end-to-end" "$LOG_DIR/unit.log" npx ava "${UNIT_TESTS[@]}"
tier "real peers (QEMU, DPDK)" "$LOG_DIR/real.log" npx ava --concurrency=1 "${REAL_TESTS[@]}"

# A reader of the output's tail (CI keeps only the end) sees what failed, not only how many:
# each failing tier's failed tests and ava's details (printed after its `─` line) or cargo's.
for log in $failed_logs; do
  echo "=== what failed in $log:"
  grep -E '^ *✘|^test .* FAILED$|panicked at' "$log" | head -40
  awk '/^  ─$/ {on=1} on' "$log" | head -150
done
[ -n "$broken_tiers" ] && echo "failing tiers:$broken_tiers"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ -z "$broken_tiers" ]

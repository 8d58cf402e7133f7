#!/usr/bin/env bash
# Crash-safety loop: the tests of tests/crash.rs with many more SIGKILLs.
#
#   scripts/crash-loop.sh [KILLS] [ROUNDS]
#
# Each round runs both crash tests (`persona ingest-stream` and `persona serve`, each killed
# KILLS times on one store, every kill followed by a full verification; see docs/testing.md)
# with a fresh store. Defaults: KILLS=100, ROUNDS=1. Stops at the first failure (exit 1); the
# test output names the customer and event that went wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-100}"
rounds="${2:-1}"
case "$kills$rounds" in
  *[!0-9]*) echo "usage: scripts/crash-loop.sh [KILLS] [ROUNDS] (whole numbers)" >&2; exit 2 ;;
esac
cargo test --release --test crash --no-run
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for round in $(seq 1 "$rounds"); do
  echo "== round $round/$rounds: $kills kills per front end"
  if ! PERSONA_CRASH_KILLS="$kills" cargo test --release --test crash -- --nocapture \
      --test-threads 1 >"$log" 2>&1; then
    cat "$log"
    echo "crash-loop: round $round failed" >&2
    exit 1
  fi
  grep -E "^(ingest-stream|serve) run|^test result" "$log"
done
echo "crash-loop: $rounds round(s) of $kills kills per front end passed"

#!/usr/bin/env bash
# Soak: runs `make test` N times on a fresh clone of HEAD while stress-ng keeps one core busy, and
# prints how often each test failed. Proves the suite does not depend on luck; not part of CI.
#
#   scripts/soak.sh [RUNS]          # default 5; or: make test-soak SOAK_RUNS=10
#
# The clone gets ../shared beside it, as CI does. The report is printed and kept in the clone's
# folder (soak-report.txt), with each run's full log beside it.
set -euo pipefail
runs="${1:-5}"
here="$(cd "$(dirname "$0")/.." && pwd)"
[ -d "$here/../shared" ] || { echo "soak: ../shared must sit beside the repository" >&2; exit 2; }
command -v stress-ng >/dev/null 2>&1 || {
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends stress-ng
}

work="$(mktemp -d /tmp/trunkline-soak.XXXXXX)"
git clone --quiet "$here" "$work/main"
ln -s "$(cd "$here/../shared" && pwd)" "$work/shared"
echo "soak: $runs runs of make test in $work/main ($(git -C "$work/main" rev-parse --short HEAD)), one core kept busy"

stress-ng --cpu 1 --quiet &
stress=$!
trap 'kill $stress 2>/dev/null || true' EXIT

passed_runs=0
for i in $(seq 1 "$runs"); do
  started=$SECONDS
  if (cd "$work/main" && make test) >"$work/run-$i.log" 2>&1; then outcome=pass; passed_runs=$((passed_runs + 1)); else outcome=FAIL; fi
  summary=$(grep -E '^ *[0-9]+ (pass|fail)$' "$work/run-$i.log" | tr -s ' \n' ' ')
  echo "run $i: $outcome in $((SECONDS - started)) s ($summary)"
done

{
  echo "soak summary: $passed_runs of $runs runs of make test passed, one core busy (stress-ng --cpu 1)"
  for i in $(seq 1 "$runs"); do
    echo "run $i: $(grep -E '^Ran [0-9]+ tests' "$work/run-$i.log" || echo 'no summary') $(grep -E '^ *[0-9]+ (pass|fail)$' "$work/run-$i.log" | tr -s ' \n' ' ')"
  done
  failures=$(cat "$work"/run-*.log | grep -E '^\(fail\)' | sed 's/ \[[0-9.]*m\?s\]$//' | sort | uniq -c | sort -rn || true)
  if [ -n "$failures" ]; then
    echo "failures per test (count of $runs runs):"
    echo "$failures"
  else
    echo "no test failed in any run"
  fi
} | tee "$work/soak-report.txt"
[ "$passed_runs" -eq "$runs" ]

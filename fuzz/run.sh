#!/usr/bin/env bash
# Runs built fuzz targets, `FUZZ_JOBS` at a time, each for `FUZZ_SECONDS` seconds in at most
# `FUZZ_RSS_MB` MiB, from its committed seeds (corpus/<target>) into target/corpus/<target>.
# Arguments: `target:max_len` specs. Binaries are read from `FUZZ_BIN_DIR` (`make fuzz-build`
# puts them in fuzz/target/bin). Prints a line of figures per target; exits 1 if any crashed,
# hung or ran out of memory (the input is in artifacts/<target>/, the log in target/logs/).
set -uo pipefail
cd "$(dirname "$0")"
: "${FUZZ_SECONDS:=60}" "${FUZZ_RSS_MB:=512}" "${FUZZ_JOBS:=1}"
: "${FUZZ_BIN_DIR:=target/bin}"
if [ $# -eq 0 ]; then
  echo "usage: fuzz/run.sh target:max_len..." >&2
  exit 2
fi
mkdir -p target/logs

run_one() {
  local target=${1%%:*} max_len=${1##*:}
  mkdir -p "target/corpus/$target" "artifacts/$target"
  "$FUZZ_BIN_DIR/$target" "target/corpus/$target" "corpus/$target" \
    -max_total_time="$FUZZ_SECONDS" -rss_limit_mb="$FUZZ_RSS_MB" -max_len="$max_len" \
    -timeout=10 -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
    >"target/logs/$target.log" 2>&1
  local status=$?
  local execs cov ft units
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "target/logs/$target.log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "target/logs/$target.log" | tail -n1 | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' "target/logs/$target.log" | tail -n1 | grep -o '[0-9]*')
  units=$(find "target/corpus/$target" -type f | wc -l)
  printf '%-18s %s  execs %s  cov %s  ft %s  corpus %s  seconds %s\n' "$target" \
    "$([ "$status" -eq 0 ] && echo ok || echo "FAILED(exit $status)")" \
    "${execs:-?}" "${cov:-?}" "${ft:-?}" "$units" "$FUZZ_SECONDS"
  return "$status"
}
export -f run_one
export FUZZ_SECONDS FUZZ_RSS_MB FUZZ_BIN_DIR

failed=0
printf '%s\n' "$@" | xargs -P "$FUZZ_JOBS" -I{} bash -c 'run_one "$1"' _ {} || failed=1
if [ "$failed" -ne 0 ]; then
  echo "a fuzz target failed: see fuzz/target/logs/ and the inputs in fuzz/artifacts/" >&2
  exit 1
fi

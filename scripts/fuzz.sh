#!/usr/bin/env bash
# Runs every libFuzzer target of native/fuzz for longer than the test suite
# does (default 60 s each; `npm run fuzz -- 600` for ten minutes), keeping a
# corpus per target in build/fuzz/corpus/ so later runs start where these
# stopped. A crash leaves its input in build/fuzz/artifacts/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
scripts/build-fuzzers.sh
mkdir -p build/fuzz/artifacts
for bin in build/fuzz/fuzz_*; do
  name=$(basename "$bin")
  mkdir -p "build/fuzz/corpus/$name"
  echo "fuzz: $name for ${seconds}s"
  log="build/fuzz/$name.log"
  status=0
  "$bin" -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$name-" \
    "build/fuzz/corpus/$name" >"$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|#[0-9]+ +DONE)|ERROR|invariant" "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $name exited with status $status; the input is in build/fuzz/artifacts/, the log in $log" >&2
    exit 1
  fi
done

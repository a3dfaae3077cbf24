#!/usr/bin/env bash
# Runs the libFuzzer targets of native/fuzz for longer than the test suite
# does: `npm run fuzz` gives each target 40 s (all of them together stay
# within 5 minutes); `npm run fuzz -- 600` ten minutes each; `npm run fuzz --
# 60 fuzz_coalescer` one target. Each run starts from the checked-in seeds
# (native/fuzz/corpus/<target>/) and from what earlier runs found
# (build/fuzz/corpus/<target>/, where new inputs are kept). A crash or a
# broken invariant leaves its input in build/fuzz/artifacts/ and makes this
# script fail, naming the target.
#
# FUZZ_SOURCES and FUZZ_OUT move the sources (default native/fuzz) and the
# build (default build/fuzz): the test suite runs a target with a planted bug
# that way to show that a crash fails the command.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-40}
shift || true
sources=${FUZZ_SOURCES:-native/fuzz}
out=${FUZZ_OUT:-build/fuzz}
FUZZ_SOURCES=$sources FUZZ_OUT=$out scripts/build-fuzzers.sh
mkdir -p "$out/artifacts"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  for src in "$sources"/fuzz_*.cc; do targets+=("$(basename "$src" .cc)"); done
fi
for name in "${targets[@]}"; do
  bin="$out/$name"
  [ -x "$bin" ] || { echo "fuzz: no target $name in $out (sources: $sources)" >&2; exit 1; }
  mkdir -p "$out/corpus/$name"
  seeds=()
  [ -d "$sources/corpus/$name" ] && seeds=("$sources/corpus/$name")
  echo "fuzz: $name for ${seconds}s"
  log="$out/$name.log"
  status=0
  "$bin" -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -artifact_prefix="$out/artifacts/$name-" \
    "$out/corpus/$name" "${seeds[@]}" >"$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|#[0-9]+ +DONE)|ERROR|invariant" "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $name failed (status $status); the input is in $out/artifacts/, the log in $log" >&2
    exit 1
  fi
done

#!/usr/bin/env bash
# Builds the libFuzzer targets of native/fuzz into build/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined), rebuilding only what is older than
# its sources. Needs Debian's clang and libclang-rt-14-dev. FUZZ_SOURCES and
# FUZZ_OUT move the targets' sources and the output (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
sources=${FUZZ_SOURCES:-native/fuzz}
out=${FUZZ_OUT:-build/fuzz}
mkdir -p "$out"
cxx=${CXX_FUZZ:-clang++}
if ! command -v "$cxx" >/dev/null; then
  echo "build-fuzzers: $cxx not found; install clang and libclang-rt-14-dev (scripts/bootstrap does)" >&2
  exit 1
fi
core=(native/core/*.cc)  # the pure packet core, all of it (binding.gyp's core_sources)
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wall)
for src in "$sources"/fuzz_*.cc; do
  name=$(basename "$src" .cc)
  bin="$out/$name"
  if [ -x "$bin" ] && [ -z "$(find "$src" native/fuzz/*.h native/core native/test/packet_builder.h -newer "$bin" -print -quit)" ]; then
    continue
  fi
  echo "build-fuzzers: $name"
  "$cxx" "${flags[@]}" -I native/fuzz -o "$bin" "$src" "${core[@]}"
done

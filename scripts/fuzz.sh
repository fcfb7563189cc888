#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/fuzz_targets) with cargo fuzz (libFuzzer) on the nightly toolchain.
#
#   scripts/fuzz.sh [--smoke] [SECONDS] [TARGET...]
#
# Each target runs SECONDS (default 60) from a working copy of its committed seed corpus
# (fuzz/corpus/<target>, written by scripts/fuzz-seeds.py from real traffic), so the committed
# corpus stays small; new inputs stay in target/fuzz-corpus/. A crash stops the run with the
# input's path: copy it to fuzz/regressions/<target>/ (the unit tests replay that directory on
# stable), fix the parser, run again. Prints one table row per target: executions, coverage,
# corpus size. --smoke builds without optimisation and without a sanitizer (the test command's
# quick check that every target runs); the default build is optimised with AddressSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(jsonrpc_envelope sse_stream jwt_token express_path config_file oauth_bodies)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzzing needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
fuzz_bin="$root/target/tools/bin/cargo-fuzz"
if [ ! -x "$fuzz_bin" ] || ! "$fuzz_bin" --version | grep -q "0.13.1"; then
  echo "== cargo install cargo-fuzz 0.13.1 into target/tools"
  cargo install --quiet --locked --version 0.13.1 --root "$root/target/tools" cargo-fuzz
fi
export PATH="$root/target/tools/bin:$PATH"

build=(--release -s address)
[ $smoke -eq 1 ] && build=(--dev -s none)
echo "== cargo +nightly fuzz build ${build[*]}"
(cd fuzz && cargo +nightly fuzz build "${build[@]}" 2>&1 | grep -v '^warning\|^ *|\|^ *=\|^$' | tail -3)

printf '\n| target | seconds | executions | exec/s | coverage (edges) | corpus: seeds → now | crashes |\n'
printf '|---|---|---|---|---|---|---|\n'
failed=0
for t in "${targets[@]}"; do
  work="$root/target/fuzz-corpus/$t"
  mkdir -p "$work" "fuzz/artifacts/$t"
  cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  log="$root/target/fuzz-$t.log"
  seeds=$(find "fuzz/corpus/$t" -type f | wc -l)
  status=0
  (cd fuzz && cargo +nightly fuzz run "${build[@]}" "$t" "$work" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$root/fuzz/artifacts/$t/" -print_final_stats=1) >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  now=$(find "$work" -type f | wc -l)
  crashes=0
  if [ $status -ne 0 ]; then
    crashes=$(find "fuzz/artifacts/$t" -type f | wc -l)
    failed=1
  fi
  printf '| %s | %s | %s | %s | %s | %s → %s | %s |\n' "$t" "$seconds" "${runs:-0}" "${rate:-0}" "${cov:-0}" "$seeds" "$now" "$crashes"
  if [ $status -ne 0 ]; then
    echo "  $t failed (exit $status); its log: $log" >&2
    grep -m5 -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" >&2 || tail -20 "$log" >&2
  fi
done
if [ $failed -ne 0 ]; then
  echo "a fuzz target failed: keep the input under fuzz/regressions/<target>/ and fix the parser" >&2
  exit 1
fi

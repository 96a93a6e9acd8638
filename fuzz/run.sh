#!/usr/bin/env bash
# Runs credproxy's fuzz targets for a bounded time each. Not part of CI (.ci/run).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target defaults to $FUZZ_SECONDS, else 60. TARGETs default to all of them.
# Seeds from fuzz/seeds/<target>/ are copied into fuzz/corpus/<target>/ (gitignored), which
# keeps growing across runs. Crashes land in fuzz/artifacts/<target>/; full logs in
# fuzz/target/logs/. Exits 1 if any target found something. $FUZZ_ARGS is passed on to
# libFuzzer (e.g. FUZZ_ARGS="-fork=2 -ignore_crashes=1").
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-${FUZZ_SECONDS:-60}}"
[ $# -gt 0 ] && shift
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: fuzz/run.sh [SECONDS] [TARGET...]  (SECONDS: a positive integer)" >&2
  exit 2
fi

# cargo-fuzz needs nightly flags (-Zsanitizer and friends); this lets the stable
# toolchain accept them.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p target/logs
echo "== cargo fuzz build (the first build takes several minutes on 2 cores)"
if ! cargo fuzz build >target/logs/build.log 2>&1; then
  tail -n 40 target/logs/build.log >&2
  exit 1
fi

host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="target/$host/release"
status=0
for target in "${targets[@]}"; do
  corpus="corpus/$target"
  mkdir -p "$corpus" "artifacts/$target"
  if [ -d "seeds/$target" ]; then
    cp -n "seeds/$target"/* "$corpus"/ 2>/dev/null || true
  fi
  dict=()
  case "$target" in
    route) dict=(-dict=dicts/route.dict) ;;
    config_*) dict=(-dict=dicts/config.dict) ;;
  esac
  log="target/logs/$target.log"
  before=$(ls "artifacts/$target" | wc -l)
  start=$(date +%s)
  rc=0
  # The binary `cargo fuzz build` made, run directly: `cargo fuzz run` would rebuild
  # (and count the build in the time) whenever src/ changed since.
  "$bin_dir/$target" -artifact_prefix="artifacts/$target/" \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" ${FUZZ_ARGS:-} "$corpus" \
    </dev/null >"$log" 2>&1 || rc=$?
  elapsed=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  if [ -z "$runs" ]; then
    runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  fi
  artifact=$(grep -oE '(Test unit|artifact) written to [^ ]+' "$log" | tail -1 | awk '{print $NF}' || true)
  after=$(ls "artifacts/$target" | wc -l)
  if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    status=1
    reason=$(grep -m1 -A1 "panicked at" "$log" | tail -n 1 || true)
    [ -n "$reason" ] || reason=$(grep -m1 -E "ERROR: (libFuzzer|AddressSanitizer)" "$log" || echo "exit $rc")
    echo "$target: FOUND after ${runs:-?} runs in ${elapsed}s: ${artifact:-no artifact} ($reason; log $log)"
  else
    echo "$target: ok, ${runs:-?} runs in ${elapsed}s, corpus $(ls "$corpus" | wc -l) inputs, no crash"
  fi
done
exit "$status"

#!/usr/bin/env bash
# Load comparison: credproxy beside nginx, HAProxy, Caddy and the direct path, on loopback,
# through the shared harness (../shared/bench/compare.sh; see its README for the method).
#
#   bash benches/compare.sh                       # default rounds, all peers
#   bash benches/compare.sh --rounds 6 --duration 4 --peers "direct nginx"
#   CREDPROXY_BENCH_SOURCES=100000 bash benches/compare.sh ...   # a large sources.yaml
#
# Extra arguments go to the harness (a later --out wins). The candidate is the release
# binary, built first; results land in target/bench/<UTC time>/ (report.md, summary.csv),
# and report.md ends with each peer's user and system µs per request.
set -euo pipefail
cd "$(dirname "$0")/.."

harness=${CREDPROXY_BENCH_HARNESS:-../shared/bench/compare.sh}
[[ -x $harness || -f $harness ]] || { echo "harness not found: $harness" >&2; exit 1; }
export CREDPROXY_BENCH_SOURCES=${CREDPROXY_BENCH_SOURCES:-10}
export CREDPROXY_BIN=$PWD/target/release/credproxy
export CREDPROXY_BENCH_DIR=${CREDPROXY_BENCH_DIR:-$(mktemp -d /tmp/credproxy-bench.XXXXXX)}

cargo build --release --locked --quiet --bin credproxy

out=target/bench/$(date -u +%Y%m%dT%H%M%SZ)
name=${CREDPROXY_BENCH_NAME:-credproxy}
# The harness reports user + system CPU together; the sampler splits it per peer from
# /proc/<pid>/stat (the peers' CPU: 1 in the harness's default pinned layout).
mkdir -p "$out"
python3 benches/cpu_split.py sample "$out/cpu-samples.txt" "${CREDPROXY_BENCH_PROXY_CPUS:-1}" &
sampler=$!
trap 'kill "$sampler" 2>/dev/null || true' EXIT
bash "$harness" --out "$out" --candidate-name "$name" \
  --candidate-port "${CREDPROXY_BENCH_PORT:-18790}" --candidate-prefix /bench \
  --candidate "exec bash $PWD/benches/candidate.sh" "$@"
kill "$sampler" 2>/dev/null || true
python3 benches/cpu_split.py report "$out" "$out/cpu-samples.txt"

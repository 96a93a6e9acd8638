#!/usr/bin/env bash
# The candidate command of benches/compare.sh, run by the harness with UPSTREAM and LISTEN
# set: writes a sources.yaml whose `bench` source points at $UPSTREAM and injects
# user:pass, padded with CREDPROXY_BENCH_SOURCES - 1 other sources, then execs credproxy
# (exec: the harness measures the proxy's own CPU and RSS).
set -euo pipefail
dir=${CREDPROXY_BENCH_DIR:?}
config=$dir/sources.yaml
python3 - "$config" "$UPSTREAM" "${CREDPROXY_BENCH_SOURCES:-10}" <<'PY'
import sys
path, upstream, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(path, "w") as f:
    f.write("sources:\n")
    f.write(f"  bench:\n    upstream: http://{upstream}\n    auth_type: http_basic\n"
            "    basic_username: user\n    basic_password: pass\n")
    for i in range(1, count):
        f.write(f"  pad-{i:06d}:\n    upstream: http://{upstream}/pad/{i}\n"
                "    auth_type: bearer\n    bearer_token: pad-token\n")
PY
RUST_LOG=${RUST_LOG:-warn} exec "${CREDPROXY_BIN:?}" --config "$config" --listen "$LISTEN" \
  --workers "${WORKERS:-0}" \
  --admin-listen "127.0.0.1:${CREDPROXY_BENCH_ADMIN_PORT:-18799}" --no-watch

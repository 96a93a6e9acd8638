#!/usr/bin/env bash
# Streams 1 GiB up and 1 GiB down through a release credproxy and prints its RSS:
# idle, and the peak (VmHWM) after each transfer. Loopback only; needs curl and python3.
#   bash benches/stream_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet

work=$(mktemp -d /tmp/credproxy-mem.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=$(free_port); proxy_port=$(free_port); admin_port=$(free_port)

# Upstream: PUT reads and discards the body; GET sends 1 GiB.
cat > "$work/sink.py" <<'PY'
import http.server, sys
CH = 1 << 20
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_PUT(self):
        n = int(self.headers.get("content-length", "0")); got = 0
        while got < n:
            b = self.rfile.read(min(CH, n - got))
            if not b: break
            got += len(b)
        body = str(got).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        n = 1 << 30; chunk = b"x" * CH
        self.send_response(200); self.send_header("content-length", str(n)); self.end_headers()
        for _ in range(n // CH): self.wfile.write(chunk)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/sink.py" "$up_port" & pids+=($!)
printf 'sources:\n  s:\n    upstream: http://127.0.0.1:%s\n    auth_type: bearer\n    bearer_token: t\n' "$up_port" > "$work/sources.yaml"
RUST_LOG=warn ./target/release/credproxy --config "$work/sources.yaml" \
  --listen "127.0.0.1:$proxy_port" --admin-listen "127.0.0.1:$admin_port" --no-watch & proxy=$!; pids+=("$proxy")
for _ in $(seq 100); do curl -fs "127.0.0.1:$admin_port/readyz" >/dev/null && break; sleep 0.1; done

rss() { awk -v k="$1" '$1 == k":" { printf "%.1f MiB", $2 / 1024 }' "/proc/$proxy/status"; }
head -c $((1 << 30)) /dev/zero > "$work/big.bin"
echo "idle:            RSS $(rss VmRSS)"
curl -fs -o /dev/null -w "upload   %{size_upload} B in %{time_total} s" -T "$work/big.bin" "127.0.0.1:$proxy_port/s/up"
echo ", peak RSS $(rss VmHWM)"
curl -fs -o /dev/null -w "download %{size_download} B in %{time_total} s" "127.0.0.1:$proxy_port/s/down"
echo ", peak RSS $(rss VmHWM)"

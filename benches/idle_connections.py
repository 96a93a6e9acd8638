#!/usr/bin/env python3
"""Memory of credproxy at rest and with many idle keep-alive client connections.

Starts the release binary on a one-source config, reads its RSS idle, then opens N client
connections (default 10,000), sends one request on each (to an upstream that this script
serves itself, so the request is really proxied and the upstream pool is used), reads the
response and leaves the connection open and idle; then reads the RSS again.

  cargo build --release && python3 benches/idle_connections.py [--connections 10000]
      [--upstream-per-caller]

credproxy closes a kept-alive connection after --header-read-timeout of idleness, so the
proxy is started with 120 s and the reading is taken well within that.
"""

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "credproxy")


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        # One write: head and body in separate segments would meet Nagle and delayed ACK.
        body = b'{"ok":true}\n'
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))

    def log_message(self, *args):
        pass


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--upstream-per-caller", action="store_true",
                        help="start credproxy with --upstream-per-caller")
    args = parser.parse_args()
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    want = args.connections + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        sys.exit(f"the open-file limit ({hard}) is below {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))  # inherited by credproxy

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory() as scratch:
        config = os.path.join(scratch, "sources.yaml")
        with open(config, "w") as f:
            f.write(f"sources:\n  bench:\n    upstream: http://127.0.0.1:{upstream.server_address[1]}\n"
                    "    auth_type: bearer\n    bearer_token: t\n")
        proxy = subprocess.Popen(
            [BINARY, "--config", config, "--listen", f"127.0.0.1:{port}", "--admin-listen",
             f"127.0.0.1:{admin}", "--no-watch", "--header-read-timeout", "120s",
             "--max-connections", str(want)]
            + (["--upstream-per-caller"] if args.upstream_per_caller else []),
            env=dict(os.environ, RUST_LOG="warn"), start_new_session=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", admin), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        sys.exit("credproxy did not start")
                    time.sleep(0.05)
            idle = rss_kib(proxy.pid)
            request = f"GET /bench/small HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()
            clients = []
            started = time.monotonic()
            for _ in range(args.connections):
                client = socket.create_connection(("127.0.0.1", port))
                client.sendall(request)
                response = b""
                while b'{"ok":true}\n' not in response:
                    chunk = client.recv(4096)
                    if not chunk:
                        sys.exit("credproxy closed a connection")
                    response += chunk
                if not response.startswith(b"HTTP/1.1 200"):
                    sys.exit(f"unexpected response: {response[:80]!r}")
                clients.append(client)
            elapsed = time.monotonic() - started
            time.sleep(0.5)  # let the proxy settle; the reading is of idle connections
            loaded = rss_kib(proxy.pid)
            peak = next(int(l.split()[1]) for l in open(f"/proc/{proxy.pid}/status") if l.startswith("VmHWM:"))
            print(f"idle RSS: {idle / 1024:.1f} MiB")
            print(f"RSS with {len(clients)} idle keep-alive client connections: {loaded / 1024:.1f} MiB "
                  f"({(loaded - idle) / len(clients):.2f} KiB per connection; peak {peak / 1024:.1f} MiB; "
                  f"opened in {elapsed:.1f} s)")
            for client in clients:
                client.close()
        finally:
            os.killpg(proxy.pid, signal.SIGTERM)
            proxy.wait(timeout=30)
            upstream.shutdown()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Paired load comparison of two credproxy set-ups, with the shared harness's method.

The shared harness (../shared/bench/compare.sh) compares credproxy with other proxies; this
script compares credproxy with itself under two configurations that the harness cannot
express in one run:

  oauth2   an `oauth2` source with its token cached  vs  a static `bearer` source
  sources  100,000 sources in the file               vs  10 sources
  log      the access log on (info, json, to a file)  vs  off (warn)
  build    this build                                  vs  $CREDPROXY_BASELINE, another
                                                           credproxy binary (before/after)
  per-caller  --upstream-per-caller                    vs  the shared upstream pool
  otlp     traces exported (--otlp-endpoint, to a sink)  vs  tracing off

Method, as in the harness: wrk (1 thread, keep-alive) and the upstream nginx pinned to
CPU 0, each proxy pinned to CPU 1; both proxies run all the time and are measured
alternately, the starting one swapped every round; ratios are taken within a round and
their median reported. The upstream answers 401 unless the request carries the injected
credential, so a proxy that fails to inject shows errors instead of looking fast.

  python3 benches/paired.py oauth2 --rounds 8 --duration 4
  python3 benches/paired.py sources --rounds 8 --duration 4
  CREDPROXY_BINARY=/path/to/other/credproxy python3 benches/paired.py log
  CREDPROXY_BASELINE=/path/to/before python3 benches/paired.py build \
      --proxy-cpus 0,1 --proxy-args "--workers 2"     (two workers, sharing wrk's CPU)
  CREDPROXY_BASELINE=/path/to/before python3 benches/paired.py build \
      --sources 100000 --admin-load "/?q=none"        (proxied requests while the status
                                                       page is rendered back to back)

Needs nginx, wrk, taskset (compare.sh installs the first two) and a release build
(`cargo build --release`); prints a table and writes target/bench/paired-<name>-<time>.json.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("CREDPROXY_BINARY", os.path.join(ROOT, "target", "release", "credproxy"))
TOKEN = "bench-token"

UPSTREAM_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    map $http_authorization $credential_ok {{
        default 0;
        "Basic dXNlcjpwYXNz" 1;
        "Bearer {token}" 1;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /token {{
            default_type application/json;
            return 200 '{{"access_token":"{token}","token_type":"Bearer","expires_in":86400}}';
        }}
        location ~ /small$ {{
            if ($credential_ok = 0) {{ return 401 "missing or wrong Authorization\\n"; }}
            default_type application/json;
            return 200 '{{"ok":true,"from":"bench-upstream"}}\\n';
        }}
    }}
}}
"""

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKRESULT %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what, deadline_s=30):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{what} did not come up within {deadline_s}s")


def status_of(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def sources_yaml(kind, upstream, padding):
    """One measured source `bench` of `kind`, plus `padding` bearer sources."""
    lines = ["sources:", "  bench:", f"    upstream: http://{upstream}"]
    if kind == "http_basic":
        lines += ["    auth_type: http_basic", "    basic_username: user", "    basic_password: pass"]
    elif kind == "bearer":
        lines += ["    auth_type: bearer", f"    bearer_token: {TOKEN}"]
    elif kind == "oauth2":
        lines += ["    auth_type: oauth2", f"    oauth2_token_url: http://{upstream}/token",
                  "    oauth2_client_id: bench", "    oauth2_client_secret: bench-secret"]
    for i in range(padding):
        lines += [f"  3f2b8c1e-0000-4000-8000-{i:012d}:", f"    upstream: http://{upstream}/pad/{i}",
                  "    auth_type: bearer", f"    bearer_token: pad-{i}"]
    return "\n".join(lines) + "\n"


EXPERIMENTS = {
    # name: [(label, auth kind, padding sources, access log, extra arguments)] — the first
    # is the reference.
    "oauth2": [("bearer", "bearer", 0, False, []), ("oauth2", "oauth2", 0, False, [])],
    "sources": [("10 sources", "http_basic", 9, False, []),
                ("100k sources", "http_basic", 99_999, False, [])],
    "log": [("log off", "http_basic", 0, False, []), ("log on", "http_basic", 0, True, [])],
    "build": [("baseline", "http_basic", 0, False, []),
              ("this build", "http_basic", 0, False, [])],
    "per-caller": [("pooled", "http_basic", 0, False, []),
                   ("per caller", "http_basic", 0, False, ["--upstream-per-caller"])],
    "otlp": [("tracing off", "http_basic", 0, False, []),
             ("tracing on", "http_basic", 0, False, ["--otlp-endpoint", "{collector}"])],
}


class AdminLoad:
    """Fetches one admin path back to back, one request at a time, while a round runs:
    what an operator's dashboard or a scraper does, at its most eager."""

    def __init__(self, url):
        import threading

        self.url, self.fetched, self.failure = url, 0, None
        self.running = threading.Event()
        self.running.set()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        try:
            while self.running.is_set():
                with urllib.request.urlopen(self.url, timeout=30) as response:
                    response.read()
                self.fetched += 1
        except OSError as error:  # a run with no admin load must not pass for one
            self.failure = error

    def stop(self):
        self.running.clear()
        self.thread.join()
        if self.failure:
            sys.exit(f"admin load on {self.url} failed: {self.failure}")
        return self.fetched


def start_sink():
    """An OTLP/HTTP endpoint that reads each export and answers 200 (unpinned: its CPU
    is not the proxy's; the proxy's batch thread, which encodes and sends, is)."""
    import http.server
    import threading

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


class Proxy:
    def __init__(self, label, kind, padding, log, args, upstream, scratch, cpu):
        self.label = label
        self.port = free_port()
        self.admin = free_port()
        config = os.path.join(scratch, f"{self.port}.yaml")
        with open(config, "w") as f:
            f.write(sources_yaml(kind, upstream, padding))
        env = dict(os.environ, RUST_LOG="info" if log else "warn")
        # With the log on, one JSON line per request goes to a file, as a collector would
        # read it; the log format flag is the same either way.
        self.log = open(os.path.join(scratch, f"{self.port}.log"), "w")
        binary = BINARY
        if label == "baseline":
            binary = os.environ.get("CREDPROXY_BASELINE") or sys.exit(
                "the build experiment needs CREDPROXY_BASELINE=/path/to/the/other/credproxy")
        self.process = subprocess.Popen(
            ["taskset", "-c", str(cpu), binary, "--config", config, "--listen",
             f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}", "--no-watch",
             "--log-format", "json", *args],
            env=env, start_new_session=True, stderr=self.log)
        self.url = f"http://127.0.0.1:{self.port}/bench/small"
        wait_until(lambda: status_of(f"http://127.0.0.1:{self.admin}/readyz") == 200,
                   f"credproxy ({label})")
        status = status_of(self.url)
        if status != 200:
            sys.exit(f"preflight {label}: {self.url} answered {status}, not 200")

    def cpu_seconds(self):
        """User and system CPU seconds so far (utime, stime of /proc/<pid>/stat)."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def rss_mib(self):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        self.log.close()


def run_wrk(url, connections, duration, script, cpu):
    out = subprocess.run(
        ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
         "-s", script, url], capture_output=True, text=True, timeout=duration + 20, check=True)
    for line in out.stdout.splitlines():
        if line.startswith("WRKRESULT"):
            requests, duration_us, errors, bad, p50, p99 = map(int, line.split()[1:])
            return {"requests": requests, "rps": requests / (duration_us / 1e6),
                    "errors": errors + bad, "p50_us": p50, "p99_us": p99}
    sys.exit(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--proxy-cpus", default="1",
                        help="taskset CPU list for both proxies (0,1 shares wrk's CPU)")
    parser.add_argument("--proxy-args", default="",
                        help="extra arguments for both proxies, e.g. '--workers 2'")
    parser.add_argument("--sources", type=int,
                        help="sources in both proxies' files (default: the experiment's)")
    parser.add_argument("--admin-load", metavar="PATH",
                        help="fetch this admin path back to back during each measured run")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (bash ../shared/bench/compare.sh installs nginx and wrk)")
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")

    scratch = tempfile.mkdtemp(prefix="credproxy-paired.")
    os.makedirs(os.path.join(scratch, "tmp"))
    script = os.path.join(scratch, "report.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    upstream_port = free_port()
    with open(os.path.join(scratch, "upstream.conf"), "w") as f:
        f.write(UPSTREAM_CONF.format(dir=scratch, port=upstream_port, token=TOKEN))
    upstream_process = subprocess.Popen(
        ["taskset", "-c", "0", "nginx", "-c", os.path.join(scratch, "upstream.conf"),
         "-e", os.path.join(scratch, "error.log")], start_new_session=True)
    proxies = []
    try:
        upstream = f"127.0.0.1:{upstream_port}"
        wait_until(lambda: status_of(f"http://{upstream}/token") == 200, "upstream nginx")
        collector = start_sink() if args.experiment == "otlp" else ""
        proxies = [Proxy(label, kind, padding if args.sources is None else args.sources - 1, log,
                         [a.replace("{collector}", collector) for a in extra]
                         + args.proxy_args.split(), upstream, scratch, cpu=args.proxy_cpus)
                   for label, kind, padding, log, extra in EXPERIMENTS[args.experiment]]
        for proxy in proxies:  # warm-up: pools, caches, the token
            run_wrk(proxy.url, args.connections, 1, script, cpu=0)
        rows = {proxy.label: [] for proxy in proxies}
        for round_ in range(args.rounds):
            order = proxies if round_ % 2 == 0 else proxies[::-1]
            for proxy in order:
                admin = args.admin_load and AdminLoad(
                    f"http://127.0.0.1:{proxy.admin}{args.admin_load}")
                cpu_before = proxy.cpu_seconds()
                result = run_wrk(proxy.url, args.connections, args.duration, script, cpu=0)
                user, system = (
                    (after - before) * 1e6 / result["requests"]
                    for after, before in zip(proxy.cpu_seconds(), cpu_before))
                result["user_us_per_req"], result["sys_us_per_req"] = user, system
                result["cpu_us_per_req"] = user + system
                result["rss_mib"] = proxy.rss_mib()
                # The admin fetches' CPU is in the per-request figures: it is the same work
                # in both proxies, and what matters here is what it does to the latency.
                result["admin_fetches"] = admin.stop() if admin else 0
                rows[proxy.label].append(result)
            print(f"round {round_ + 1}/{args.rounds}: " + "  ".join(
                f"{label} {rows[label][-1]['rps']:.0f} req/s" for label in rows), flush=True)
    finally:
        for proxy in proxies:
            proxy.stop()
        os.killpg(upstream_process.pid, signal.SIGTERM)
        upstream_process.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)

    reference, candidate = (proxy.label for proxy in proxies)
    median = statistics.median
    ratio = lambda key: median(c[key] / r[key] for r, c in zip(rows[reference], rows[candidate]))
    summary = {
        "experiment": args.experiment, "rounds": args.rounds, "duration_s": args.duration,
        "connections": args.connections, "proxy_cpus": args.proxy_cpus,
        "proxy_args": args.proxy_args, "sources": args.sources, "admin_load": args.admin_load,
        "peers": {label: {key: median(r[key] for r in results)
                          for key in ("rps", "p50_us", "p99_us", "cpu_us_per_req",
                                      "user_us_per_req", "sys_us_per_req", "rss_mib",
                                      "admin_fetches")}
                  | {"errors": sum(r["errors"] for r in results)}
                  for label, results in rows.items()},
        "ratios": {f"{candidate} / {reference}": {
            key: ratio(key) for key in ("rps", "p50_us", "p99_us", "cpu_us_per_req",
                                        "user_us_per_req")}},
        "raw": rows,
    }
    print(f"\n{args.experiment}: {args.rounds} rounds x {args.duration}s, "
          f"{args.connections} connections, medians")
    print(f"{'':16} {'req/s':>9} {'p50 us':>7} {'p99 us':>7} {'CPU us/req':>10} "
          f"{'user':>6} {'sys':>6} {'RSS MiB':>8} {'errors':>6} {'admin':>6}")
    for label, peer in summary["peers"].items():
        print(f"{label:16} {peer['rps']:9.0f} {peer['p50_us']:7.0f} {peer['p99_us']:7.0f} "
              f"{peer['cpu_us_per_req']:10.2f} {peer['user_us_per_req']:6.2f} "
              f"{peer['sys_us_per_req']:6.2f} {peer['rss_mib']:8.1f} {peer['errors']:6d} "
              f"{peer['admin_fetches']:6.0f}")
    for name, values in summary["ratios"].items():
        print(f"{name}: " + "  ".join(f"{key} x{value:.3f}" for key, value in values.items()))
    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"paired-{args.experiment}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    print(f"-> {out}")


if __name__ == "__main__":
    main()

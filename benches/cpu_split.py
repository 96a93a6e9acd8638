#!/usr/bin/env python3
"""User and system CPU per request for every peer of a shared-harness run.

The harness reports CPU per request as utime + stime together. This splits it, from the
same source (/proc/<pid>/stat): `sample` polls the peers' processes while the harness runs;
`report` takes each measured run's window (its wrk output file is written as the run
ends) and divides the harness's CPU µs per request by the user and system shares that the
peer's processes accumulated in that window.

  python3 benches/cpu_split.py sample SAMPLES_FILE PROXY_CPUS &    # while the harness runs
  python3 benches/cpu_split.py report OUT_DIR SAMPLES_FILE         # adds to report.md

Peers are recognised by process name and by being pinned to the proxy CPUs (the upstream
nginx runs on the other CPU, so it is not counted as the nginx peer).
"""

import csv
import os
import statistics
import sys
import time

PEERS = ("nginx", "haproxy", "caddy", "credproxy")
INTERVAL_S = 0.02


def pinned_peers(cpus):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/status") as f:
                allowed = next(l.split()[1] for l in f if l.startswith("Cpus_allowed_list:"))
        except (OSError, StopIteration):
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if comm in PEERS and allowed == cpus:
            fields = stat.rsplit(")", 1)[1].split()
            yield pid, comm, int(fields[11]), int(fields[12])


def sample(path, cpus):
    with open(path, "w") as out:
        while True:
            now = time.time()
            for pid, comm, user, system in pinned_peers(cpus):
                out.write(f"{now:.3f} {pid} {comm} {user} {system}\n")
            out.flush()
            time.sleep(INTERVAL_S)


def split_in(samples, comm, start, end):
    """(user ticks, system ticks) that `comm`'s processes spent between start and end."""
    first, last = {}, {}
    for t, pid, name, user, system in samples:
        if name == comm and start <= t <= end:
            first.setdefault(pid, (user, system))
            last[pid] = (user, system)
    user = sum(last[p][0] - first[p][0] for p in last)
    system = sum(last[p][1] - first[p][1] for p in last)
    return user, system


def report(out_dir, samples_path):
    with open(samples_path) as f:
        samples = [(float(t), pid, comm, int(u), int(s))
                   for t, pid, comm, u, s in (line.split() for line in f)]
    per_case = {}
    with open(os.path.join(out_dir, "raw.csv")) as f:
        for row in csv.DictReader(f):
            if row["phase"] == "warmup" or row["peer"] == "direct":
                continue
            raw = os.path.join(out_dir, "raw", f"{row['phase']}-r{row['round']}-c{row['conns']}-"
                                               f"{row['body']}-{row['peer']}.txt")
            end = os.path.getmtime(raw)
            start = end - float(row["duration_s"])
            comm = row["peer"] if row["peer"] in PEERS else "credproxy"
            user, system = split_in(samples, comm, start, end)
            if user + system == 0:
                continue
            cpu = float(row["proxy_cpu_us_per_req"])
            key = (int(row["conns"]), row["body"], row["peer"])
            per_case.setdefault(key, []).append((cpu * user / (user + system),
                                                 cpu * system / (user + system)))
    lines = ["", "## User and system CPU per request (benches/cpu_split.py, /proc/<pid>/stat)", "",
             "| conns | body | peer | user µs/req | system µs/req | runs |", "|---:|---|---|---:|---:|---:|"]
    for (conns, body, peer), runs in sorted(per_case.items()):
        user = statistics.median(u for u, _ in runs)
        system = statistics.median(s for _, s in runs)
        lines.append(f"| {conns} | {body} | {peer} | {user:.1f} | {system:.1f} | {len(runs)} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "report.md"), "a") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)

#!/usr/bin/env bash
# Live rotation as it happens in a Kubernetes pod, without a cluster: a directory laid out
# the way kubelet lays out a Secret volume, a credproxy serving from it, and the atomic
# `..data` symlink swap kubelet does when the Secret changes. Shows:
#   1. a swap is reloaded live (the /config generation goes up, the new source is in);
#   2. a swap to a broken file is rejected and the last good config keeps serving;
#   3. a subPath-style mount (a bind mount of the one file) never sees the swap.
#      This part needs `unshare --mount` (root); it is skipped where that is refused.
#
# Usage: bash deploy/local/rotation-demo.sh [SOURCES_YAML]
#   (default: deploy/kubernetes/sidecar/sources.yaml; CREDPROXY_BIN=path skips the build)
set -euo pipefail
cd "$(dirname "$0")/../.."

sources=${1:-deploy/kubernetes/sidecar/sources.yaml}
bin=${CREDPROXY_BIN:-}
if [[ -z "$bin" ]]; then
  cargo build --locked --quiet --bin credproxy
  bin="${CARGO_TARGET_DIR:-target}/debug/credproxy"
fi
bin=$(realpath "$bin")

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # A subPath bind mount lives in its own mount namespace and goes with its process.
  rm -rf "$work"
}
trap cleanup EXIT

# kubelet's layout of a Secret volume (its "AtomicWriter"):
#   ..v1/sources.yaml                  the files of one version of the Secret
#   ..data -> ..v1                     replaced atomically (rename) on every update
#   sources.yaml -> ..data/sources.yaml  what the container opens
volume="$work/volume"
mkdir -p "$volume/..v1"
cp "$sources" "$volume/..v1/sources.yaml"
ln -s ..v1 "$volume/..data"
ln -s ..data/sources.yaml "$volume/sources.yaml"

# Swap in a new version the way kubelet does: write the new directory, point a temporary
# symlink at it, rename that over ..data (atomic), then delete the old directory.
swap() { # $1 = new version name, stdin = the new sources.yaml
  mkdir "$volume/..$1"
  cat > "$volume/..$1/sources.yaml"
  local old
  old=$(readlink "$volume/..data")
  ln -s "..$1" "$volume/..data_tmp"
  date +%s%N > "$work/swapped_at" # (a pipe's subshell runs this: a file, not a variable)
  mv -T "$volume/..data_tmp" "$volume/..data"
  rm -rf "${volume:?}/$old"
}

# Start credproxy on free loopback ports and set $admin_addr once its admin listener is
# up (it binds after the config loaded and the proxy listener bound). Not run in $(…):
# the process id must reach cleanup().
start() { # $1 = config path, $2 = log file, rest = command prefix (e.g. unshare …)
  local config=$1 log=$2
  shift 2
  # Made here, not by the redirect below: that runs in the background job, and the first
  # look for the admin address could come before it.
  : > "$log"
  "$@" "$bin" serve --config "$config" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --log-format json > "$log" 2>&1 &
  pids+=($!)
  local deadline=$((SECONDS + 20))
  admin_addr=""
  while [[ -z "$admin_addr" ]]; do
    admin_addr=$(sed -n 's/.*"listener":"admin","listen":"\([^"]*\)".*/\1/p' "$log")
    if [[ -n "$admin_addr" ]]; then break; fi
    if ((SECONDS > deadline)) || ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo "credproxy did not start:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.05
  done
}

generation() { # $1 = admin address
  curl -sf "http://$1/config" | python3 -c 'import json, sys; print(json.load(sys.stdin)["generation"])'
}

# Polls /config until the generation is $2; fails after $3 seconds.
wait_generation() {
  local admin=$1 want=$2 deadline=$((SECONDS + $3))
  until [[ "$(generation "$admin")" == "$want" ]]; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.02
  done
}

# Milliseconds from the last swap to credproxy's "Config reloaded" log line for
# generation $2 (both clocks are this machine's; polling overhead is not counted).
reload_ms() { # $1 = log file, $2 = generation
  python3 - "$1" "$2" "$(cat "$work/swapped_at")" <<'PY'
import json, sys
from datetime import datetime
log, generation, swapped_ns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for line in open(log):
    event = json.loads(line)
    if event.get("message") == "Config reloaded" and event.get("generation") == generation:
        at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        at_ns = int(at.timestamp()) * 10**9 + at.microsecond * 1000
        print(round((at_ns - swapped_ns) / 1e6, 1))
        break
PY
}

new_source() { # $1 = id: the sources file plus one more source, visible in /config
  cat "$sources"
  printf '\n  %s:\n    upstream: http://127.0.0.1:9/rotated\n    auth_type: none\n' "$1"
}

echo "== credproxy on a kubelet-style Secret volume: $sources"
start "$volume/sources.yaml" "$work/serve.log"
admin=$admin_addr
curl -sf "http://$admin/readyz" > /dev/null
echo "ready; /config generation $(generation "$admin")"

echo "== 1. swap ..data to a new version (what kubelet does after a Secret update)"
new_source rotated-in | swap v2
if ! wait_generation "$admin" 2 10; then
  echo "FAIL: the swap was not reloaded within 10 s" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
curl -sf "http://$admin/config" | grep -q '"id":"rotated-in"' || {
  echo "FAIL: generation 2 lacks the new source" >&2
  exit 1
}
echo "reloaded $(reload_ms "$work/serve.log" 2) ms after the swap (generation 2, source rotated-in present); no restart"

echo "== 2. swap to a broken file: rejected, the last good config keeps serving"
printf 'sources:\n  broken:\n    upstream: not-a-url\n    auth_type: bearer\n' | swap v3
# Wait for the rejection to be counted, then confirm nothing else changed.
deadline=$((SECONDS + 10))
until curl -sf "http://$admin/metrics" | grep -q '^credproxy_config_reloads_total{result="rejected"} [1-9]'; do
  if ((SECONDS > deadline)); then
    echo "FAIL: the broken file was not seen within 10 s" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  sleep 0.05
done
[[ "$(generation "$admin")" == 2 ]] || { echo "FAIL: a broken file replaced the config" >&2; exit 1; }
curl -sf "http://$admin/readyz" > /dev/null
echo "rejected (counted in credproxy_config_reloads_total{result=\"rejected\"}); generation still 2, /readyz 200"
new_source rotated-again | swap v4
wait_generation "$admin" 3 10 || { echo "FAIL: the fix was not reloaded" >&2; exit 1; }
echo "the next good version applies: generation 3"

echo "== 3. subPath: a bind mount of the one file, resolved when the container starts"
container_dir="$work/container-etc"
mkdir -p "$container_dir"
touch "$container_dir/sources.yaml"
if ! unshare --mount --propagation private \
  mount --bind /dev/null "$container_dir/sources.yaml" 2>/dev/null; then
  echo "skipped: a private bind mount is refused here (needs root and unshare)"
  exit 0
fi
resolved=$(realpath "$volume/sources.yaml")
# A private mount namespace for this one process, as a container has.
start "$container_dir/sources.yaml" "$work/subpath.log" \
  unshare --mount --propagation private \
  sh -c 'mount --bind "$0" "$1" && shift && exec "$@"' "$resolved" "$container_dir/sources.yaml"
sub_admin=$admin_addr
echo "started on the bind-mounted file; generation $(generation "$sub_admin")"
printf 'sources:\n  after-subpath-swap:\n    upstream: http://127.0.0.1:9/x\n    auth_type: none\n' | swap v5
# Proving that nothing happens takes a wait: 3 s is twelve times the 250 ms reload bound.
if wait_generation "$sub_admin" 2 3; then
  echo "FAIL: expected the subPath-style mount to miss the update" >&2
  exit 1
fi
echo "after the swap: still generation 1 with the old content, and it stays so: a subPath"
echo "mount never sees a rotated Secret (the volume-mounted credproxy above did: generation $(generation "$admin"))"

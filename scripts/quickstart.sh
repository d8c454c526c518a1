#!/usr/bin/env bash
# README command 1: install, start launch-server on its embedded defaults (SQLite file, local
# storage directory and a local Ray, all under ./.launch), run the example, then stop the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh server
export LAUNCH_DATA_DIR="${LAUNCH_DATA_DIR:-$PWD/.launch}"
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0
export RAY_TMPDIR="${RAY_TMPDIR:-$(mktemp -d /tmp/launch-ray-XXXXXX)}"
port="${LAUNCH_PORT:-50051}"
mkdir -p "$LAUNCH_DATA_DIR"
.venv/bin/launch-server serve --bind "127.0.0.1:${port}" > "$LAUNCH_DATA_DIR/server.log" 2>&1 &
server_pid=$!
# Stop only the server we started (by pid); it shuts down the local Ray it started.
trap 'kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
.venv/bin/python examples/wait_healthy.py "127.0.0.1:${port}" 180 launch.v1.InferenceService || { cat "$LAUNCH_DATA_DIR/server.log"; exit 1; }
grep -A1 "development API key" "$LAUNCH_DATA_DIR/server.log" || true
LAUNCH_API_KEY="$(cat "$LAUNCH_DATA_DIR/dev_api_key")" LAUNCH_ENDPOINT="127.0.0.1:${port}" \
  .venv/bin/python examples/quickstart.py

#!/usr/bin/env bash
# Regenerates the Python stubs in launch_client/launch/v1 from proto/launch/v1.
# The stubs are committed; CI runs this and fails when the tree changes (drift check).
set -euo pipefail
export LC_ALL=C  # a stable order of the proto files for the sources hash below
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
out=launch_client/launch/v1
find "$out" -maxdepth 1 -name '*_pb2*.py*' -delete 2>/dev/null || true
"$PY" -m grpc_tools.protoc -I proto \
  --python_out=launch_client --pyi_out=launch_client --grpc_python_out=launch_client \
  proto/launch/v1/*.proto
# The package records which sources it came from (comments included), so the drift check also
# catches a proto change that alters no generated code.
sources="$(cat proto/launch/v1/*.proto | sha256sum | cut -d' ' -f1)"
printf '"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""\n\nPROTO_SHA256 = "%s"\n' "$sources" > "$out/__init__.py"

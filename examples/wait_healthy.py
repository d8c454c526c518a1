"""Waits until a launch-server answers the standard gRPC health check:
`wait_healthy.py ADDR SECS [SERVICE]` (SERVICE launch.v1.InferenceService waits for Ray too)."""

from __future__ import annotations

import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(address: str, timeout: float, service: str = "") -> int:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status == 1:
                    return 0
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    print(f"launch-server at {address} not healthy after {timeout} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 60.0, *sys.argv[3:4]))

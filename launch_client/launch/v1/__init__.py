"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

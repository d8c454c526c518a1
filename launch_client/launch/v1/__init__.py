"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "b17eed2474e6de523e6557e0bd65d5bfd4035dfd1b8d429039baa1492e887359"

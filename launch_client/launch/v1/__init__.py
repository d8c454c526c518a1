"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "afd06dd2b387493406fa95302ee16880641c02fc5714bc8a2488b5b801581373"

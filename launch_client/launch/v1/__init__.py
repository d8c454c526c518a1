"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "633acb66d87cb776243c5b3ea091f8fdfa4038f11dc8a5860047586962a244ab"

"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "573033d4d4fb32c58ebd15291f06bcddd85b282beb54c463fcfee0509bf56298"

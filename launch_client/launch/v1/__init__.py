"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "ec609bb4d4b3cb96f762e84ec0856de679d93946796fa0c77f06bbf89d3155eb"

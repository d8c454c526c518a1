"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "e8a1d6378f3a6acedb50055ef0efcbcebfeb60fc22d91ae108633bc80a955c55"

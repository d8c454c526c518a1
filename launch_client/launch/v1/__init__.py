"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "983b705395c372694faa73d4cc505fd20cfe2c845756ab52624f32b3306b336e"

"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "1e05fe639694bc6cbabb24852b5424e9b34d8f4a47854fdede7ddd33d6bc378e"

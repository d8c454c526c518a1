"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "0f24b8b9f77f49671bece743e1f60ccfaa1ac1d5e587499382ee7868c58049b9"

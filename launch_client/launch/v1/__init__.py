"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "8aaf10f666d091d836ffc2ee192ea922b4f167e6ec2f379a8ce7409bad0bf5af"

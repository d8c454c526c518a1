"""Generated gRPC stubs for launch.v1 (do not edit; run scripts/gen_protos.sh)."""

PROTO_SHA256 = "720baacf2abd2b372786bda0bbff2447abd00ec652096f2f08fa769cba469b83"

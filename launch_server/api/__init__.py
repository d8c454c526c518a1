"""The gRPC layer: servicers, the auth-and-errors interceptor, conversions and the server factory."""

"""Launch server: a gRPC control plane and data plane that serves model bundles on Ray Serve."""

__version__ = "0.1.0"

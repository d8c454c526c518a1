"""Ray Serve: the replica runtime, the reconciler and the router."""

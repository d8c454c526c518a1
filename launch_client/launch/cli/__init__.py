"""The `launch` command line: the SDK's day-to-day operations (bundles, endpoints, requests, batch
jobs, settings) for people at a terminal and for scripts (`--output json`).

It imports only the client side of the project, so it works from a plain `pip install` without the
server extras (no Ray, no SQL libraries)."""

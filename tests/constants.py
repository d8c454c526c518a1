"""Sizes and waits that several tests and benchmarks share, named once so that a change to the
server's limits or to how slow this machine is needs one edit, not a hunt."""

from __future__ import annotations

MIB = 1 << 20

# A test's server only has to bind its port; one with its own Ray must also start that Ray.
SERVER_START_S = 60.0
SERVING_START_S = 180.0
# A server that owns its Ray shuts Serve down before exiting (direct-ingress draining included):
# SIGKILL before that leaves Ray processes behind.
OWN_RAY_STOP_S = 180.0
# An endpoint's create -> READY on a loaded 2-core machine shared with other test runs.
ENDPOINT_READY_S = 180

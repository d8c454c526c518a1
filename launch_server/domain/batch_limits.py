"""The bounds of dynamic batching, shared by the endpoint settings the server validates, the
replica that reads a batch function's own limits (replica/batching.py), and the SDK's
`launch.batched` decorator, which keeps its own copy of these numbers because a client install
has no server package.

A batch is formed from the requests one worker holds at once (at most the deployment's
max_ongoing_requests, 100 by default), so a max batch size above that only matters on a worker
that holds more; 1024 keeps one batch's inputs and results within a few messages' worth."""

from __future__ import annotations

MAX_BATCH_SIZE = 1024
MAX_BATCH_WAIT_MS = 1000
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_MAX_BATCH_WAIT_MS = 0

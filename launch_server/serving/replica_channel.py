"""A gRPC channel from the server to one replica's own port (replica/listener.py), as both of
the server's direct paths open it: the dispatcher's task channels (task_queue/direct_calls.py)
and streams relayed for clients (replica_streams.py). Plaintext, or TLS verified against the
server's own authority when replica ports speak TLS (wire/replica_tls.py)."""

from __future__ import annotations

import grpc

from launch_server.wire import replica_tls
from launch_server.wire.limits import MESSAGE_SIZE_OPTIONS

CHANNEL_OPTIONS = [
    *MESSAGE_SIZE_OPTIONS,
    ("grpc.keepalive_time_ms", 20_000),  # the replica's server accepts these (replica/listener.py)
    ("grpc.keepalive_timeout_ms", 10_000),
]


def replica_channel(address: str, ca_pem: str, extra: list[tuple[str, int]] | None = None) -> grpc.aio.Channel:
    """A channel to `address`; `ca_pem` empty means the port speaks plaintext; `extra` options
    go after the common ones."""
    options = [*CHANNEL_OPTIONS, *(extra or [])]
    if ca_pem:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem.encode())
        return grpc.aio.secure_channel(address, credentials, options=[*options, *replica_tls.channel_options(ca_pem)])
    return grpc.aio.insecure_channel(address, options=options)

"""Sizes every gRPC hop of the server and its replicas agrees on: a message over these is refused
by gRPC itself (RESOURCE_EXHAUSTED), never half-read. docs/limits.md lists them for users."""

from __future__ import annotations

MAX_MESSAGE_BYTES = 64 << 20
# An answer sent on a task channel leaves room for the tagged message's own framing.
MAX_ANSWER_BYTES = MAX_MESSAGE_BYTES - 1024

# One PredictStreamResponse carries its first value and at most this many more that were waiting,
# of at most this much JSON text in all (so a message of waiting values stays far below the
# message limit whatever their number).
STREAM_MORE_MAX = 64
STREAM_MORE_BYTES = 1 << 20

MESSAGE_SIZE_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

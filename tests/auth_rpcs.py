"""Every RPC of every launch.v1 service, read from the generated descriptors (not a hand list),
and a call of the right kind for each: the auth tests use them to show nothing is left open."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import launch.v1
from google.protobuf.descriptor import MethodDescriptor


@dataclass(frozen=True)
class Rpc:
    service: str  # full name, e.g. launch.v1.TaskService
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method.name}"


def every_rpc() -> Iterator[Rpc]:
    for info in pkgutil.iter_modules(launch.v1.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"launch.v1.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield Rpc(service.full_name, method)


def call_empty(channel: grpc.Channel, rpc: Rpc, metadata: tuple[tuple[str, str], ...], timeout: float = 10) -> None:
    """Calls the RPC with one empty request message (empty bytes are a valid empty message of
    any type) and reads the whole answer; raises grpc.RpcError as the server answers."""
    kw = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
    client_streams = rpc.method.client_streaming
    server_streams = rpc.method.server_streaming
    if not client_streams and not server_streams:
        channel.unary_unary(rpc.path, **kw)(b"", metadata=metadata, timeout=timeout)
    elif not client_streams:
        list(channel.unary_stream(rpc.path, **kw)(b"", metadata=metadata, timeout=timeout))
    elif not server_streams:
        channel.stream_unary(rpc.path, **kw)(iter([b""]), metadata=metadata, timeout=timeout)
    else:
        list(channel.stream_stream(rpc.path, **kw)(iter([b""]), metadata=metadata, timeout=timeout))


def status_of(channel: grpc.Channel, rpc: Rpc, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    try:
        call_empty(channel, rpc, metadata)
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[attr-defined]
    return grpc.StatusCode.OK


NO_KEY: tuple[tuple[str, str], ...] = ()
MALFORMED_KEY = (("authorization", "Bearer not-a-key"),)
UNKNOWN_KEY = (("authorization", "Bearer lk_0123456789ab_" + "A" * 43),)
BAD_KEYS = {"no key": NO_KEY, "malformed key": MALFORMED_KEY, "unknown key": UNKNOWN_KEY}

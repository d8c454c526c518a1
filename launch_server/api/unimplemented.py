"""Servicers for RPCs that are part of the v1 contract but served in a later milestone. They
answer UNIMPLEMENTED with ErrorInfo reason ERROR_REASON_NOT_IMPLEMENTED, through the same error
path as every other RPC, so clients can already code against the whole contract."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from launch_server.domain.errors import NotImplementedYet


def unimplemented_servicer(base: type, service: ServiceDescriptor, methods: set[str] | None = None) -> Any:
    """Builds a subclass of the generated servicer base whose named methods (all by default)
    raise NotImplementedYet; streaming responses are async generators so the interceptor can
    iterate them uniformly."""
    namespace: dict[str, Any] = {}
    for method in service.methods:
        if methods is not None and method.name not in methods:
            continue
        message = f"{service.name}.{method.name} is not served by this server version yet"
        if method.server_streaming:

            async def stream(self, request, context, _message=message):  # type: ignore[no-untyped-def]
                raise NotImplementedYet(_message)
                yield  # pragma: no cover - makes this an async generator

            namespace[method.name] = stream
        else:

            async def unary(self, request, context, _message=message):  # type: ignore[no-untyped-def]
                raise NotImplementedYet(_message)

            namespace[method.name] = unary
    return type(f"Unimplemented{service.name}", (base,), namespace)

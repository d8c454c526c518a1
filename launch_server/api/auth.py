"""One interceptor does what every RPC needs: authenticate the API key and translate domain
errors into rich gRPC statuses. The owner is handed to servicers through a ContextVar that the
wrapped handler sets in the handler's own task, so servicers never parse metadata themselves.

Health and reflection stay open so load balancers and grpcurl-style tools work without a key."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from launch_server.domain.errors import DomainError, Unauthenticated
from launch_server.domain.keys import ApiKeyService

from .errors import internal_status, to_status

current_owner: contextvars.ContextVar[str] = contextvars.ContextVar("current_owner")

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def owner() -> str:
    return current_owner.get()


def bearer_token(metadata: tuple[tuple[str, Any], ...] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata must be 'Bearer <api key>'")
            return token.strip()
    raise Unauthenticated("missing 'authorization: Bearer <api key>' metadata")


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    status = to_status(exc) if isinstance(exc, DomainError) else internal_status(exc)
    await context.abort_with_status(status)


class AuthErrorsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: ApiKeyService) -> None:
        self._keys = keys
        # Wrapped handlers are built once per method, not per call: this runs on every request.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="launch-auth")
        self._checks: dict[str, asyncio.Future[str]] = {}  # key -> its database check in flight

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        wrapped = self._wrapped[method] = self._wrap(handler)
        return wrapped

    def _checked(self, token: str, check: asyncio.Future[str]) -> None:
        self._checks.pop(token, None)
        if not check.cancelled():
            check.exception()  # retrieved here too: every waiter may have gone (cancelled calls)

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        """A key seen lately is answered from memory; any other is checked against the database
        on the interceptor's own threads (not the default pool, where webhook posts and queue
        writes may be waiting), one check per key however many calls bring it at once, so the
        event loop never waits on a query and an expired cache entry costs one query."""
        token = bearer_token(context.invocation_metadata())
        owner = self._keys.cached_owner(token)
        if owner is None:
            check = self._checks.get(token)
            if check is None:
                loop = asyncio.get_running_loop()
                check = self._checks[token] = loop.run_in_executor(self._executor, self._keys.authenticate, token)
                check.add_done_callback(functools.partial(self._checked, token))
            owner = await asyncio.shield(check)
        current_owner.set(owner)

    def _wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request, context):  # type: ignore[no-untyped-def]
                try:
                    await self._authenticate(context)
                    return await inner_uu(request, context)
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await _abort(context, exc)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(request_iterator, context):  # type: ignore[no-untyped-def]
                try:
                    await self._authenticate(context)
                    return await inner_su(request_iterator, context)
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await _abort(context, exc)

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request, context):  # type: ignore[no-untyped-def]
                try:
                    await self._authenticate(context)
                    async for item in inner_us(request, context):
                        yield item
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await _abort(context, exc)

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer
            )
        return handler

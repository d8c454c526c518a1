"""One interceptor does what every RPC needs: authenticate the API key and translate domain
errors into rich gRPC statuses. The owner is handed to servicers through a ContextVar that the
wrapped handler sets in the handler's own task, so servicers never parse metadata themselves.

Fail closed: every handler kind (unary or streaming, either way) is wrapped, and a handler of a
kind it does not know is refused rather than served. Health and reflection stay open so load
balancers and grpcurl-style tools work without a key.

Key checks that need the database run on the interceptor's own two threads. A key whose id had a
record lately goes straight there; any other (a new key, or one of a flood of made-up keys) waits
for one slot, so made-up keys occupy at most one of the two threads and real keys are checked on
the other, and at most MAX_UNKNOWN_WAITING of them wait (beyond that: RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from launch_server.domain.errors import DomainError, ResourceExhausted
from launch_server.domain.keys import ApiKeyService
from launch_server.wire.headers import bearer_token
from launch_server.wire.status import internal_status, to_status

current_owner: contextvars.ContextVar[str] = contextvars.ContextVar("current_owner")
current_key_id: contextvars.ContextVar[str] = contextvars.ContextVar("current_key_id")

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
MAX_UNKNOWN_WAITING = 256


def owner() -> str:
    return current_owner.get()


def key_id() -> str:
    """The id of the API key the call was authenticated with."""
    return current_key_id.get()


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    status = to_status(exc) if isinstance(exc, DomainError) else internal_status(exc)
    await context.abort_with_status(status)


async def _response_of(result: Any) -> Any:
    """A unary handler's answer, whether the handler is a coroutine function or a plain one."""
    return await result if inspect.isawaitable(result) else result


async def _responses_of(result: Any) -> AsyncIterator[Any]:
    """A streaming handler's answers, whether it returned an async or a plain iterator."""
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    elif result is not None:
        for item in result:
            yield item


class AuthErrorsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, keys: ApiKeyService) -> None:
        self._keys = keys
        # Wrapped handlers are built once per method, not per call: this runs on every request.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="launch-auth")
        self._checks: dict[str, asyncio.Future[str]] = {}  # key -> its database check in flight
        self._unknown_slot: asyncio.Semaphore | None = None  # made on the server's loop
        self._unknown_waiting = 0

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

    async def _check_unknown(self, token: str) -> str:
        """A key whose id is not known: one such check on the threads at a time."""
        if self._unknown_slot is None:
            self._unknown_slot = asyncio.Semaphore(1)
        if self._unknown_waiting >= MAX_UNKNOWN_WAITING:
            raise ResourceExhausted("too many unrecognised API keys are being checked; retry shortly")
        self._unknown_waiting += 1
        try:
            async with self._unknown_slot:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, self._keys.authenticate, token)
        finally:
            self._unknown_waiting -= 1

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        """A key the caches can answer for is answered from memory; any other is checked against
        the database on the interceptor's own threads (not the default pool, where webhook posts
        and queue writes may be waiting), one check per key however many calls bring it at once,
        so the event loop never waits on a query and an expired cache entry costs one query."""
        token = bearer_token(context.invocation_metadata())
        owner = self._keys.from_memory(token)
        if owner is None:
            check = self._checks.get(token)
            if check is None:
                if self._keys.is_known(token):
                    loop = asyncio.get_running_loop()
                    check = loop.run_in_executor(self._executor, self._keys.authenticate, token)
                else:
                    check = asyncio.ensure_future(self._check_unknown(token))
                self._checks[token] = check
                check.add_done_callback(functools.partial(self._checked, token))
            owner = await asyncio.shield(check)
        current_owner.set(owner)
        current_key_id.set(self._keys.key_id_of(token))

    def _wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler behind the key check and the error translation, whatever its kind."""
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream), handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._streaming(handler.stream_stream), handler.request_deserializer, handler.response_serializer
            )
        raise TypeError(f"refusing to serve a handler of unknown kind: {handler!r}")

    def _unary(self, inner: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        """For a handler with one response (its request is one message or a stream)."""

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                await self._authenticate(context)
                return await _response_of(inner(request, context))
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                await _abort(context, exc)

        return unary

    def _streaming(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        """For a handler with a stream of responses: one that yields them keeps an async
        generator in front of it; one that writes them (context.write) keeps a coroutine."""
        if inspect.iscoroutinefunction(inner):

            async def writing(request: Any, context: grpc.aio.ServicerContext) -> None:
                try:
                    await self._authenticate(context)
                    await inner(request, context)
                except Exception as exc:
                    if isinstance(exc, grpc.aio.AbortError):
                        raise
                    await _abort(context, exc)

            return writing

        async def yielding(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                await self._authenticate(context)
                async for item in _responses_of(inner(request, context)):
                    yield item
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                await _abort(context, exc)

        return yielding

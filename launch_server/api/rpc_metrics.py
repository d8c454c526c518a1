"""Counts every RPC the server answers, by method and final status code, and times it.

An interceptor of its own, outermost, so the code it records is the one the client got, after
the auth-and-errors interceptor translated any error. The wrapper only registers a done callback
on the call (gRPC runs it once the RPC ends, however it ends) and hands on to the handler, keeping
the handler's kind (coroutine, or async generator), which is how grpc.aio decides to run it on the
event loop. Why not py-grpc-prometheus: it instruments the sync server only, and this one is
grpc.aio; OpenTelemetry's gRPC instrumentation would add its SDK and exporter to every request for
two figures prometheus_client already keeps."""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from launch_server.observability.exposition import ServerMetrics


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # built once per method

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
        if handler is None:
            return handler  # UNIMPLEMENTED: an unknown name must not become a label value
        wrapped = self._wrapped[method] = self._wrap(method, handler)
        return wrapped

    def _watch(self, method: str, context: grpc.aio.ServicerContext) -> list[bool]:
        """Counts the call when it ends; the handler sets the returned flag when it raised
        without setting a code (grpc then sends UNKNOWN, but the context still says None)."""
        started = time.perf_counter()
        metrics = self._metrics
        counter = metrics.rpcs
        timer = metrics.rpc_seconds.labels(method)
        raised = [False]

        def ended(call: Any) -> None:
            counter.labels(method, _code_name(call, raised[0])).inc()
            timer.observe(time.perf_counter() - started)

        context.add_done_callback(ended)
        return raised

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        watch = self._watch
        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                raised = watch(method, context)
                try:
                    result = inner(request, context)
                    return await result if inspect.isawaitable(result) else result
                except Exception:
                    raised[0] = True
                    raise

            make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
            return make(unary, handler.request_deserializer, handler.response_serializer)
        inner = handler.unary_stream or handler.stream_stream
        make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
        if inspect.iscoroutinefunction(inner):

            async def writing(request: Any, context: grpc.aio.ServicerContext) -> None:
                raised = watch(method, context)
                try:
                    await inner(request, context)
                except Exception:
                    raised[0] = True
                    raise

            return make(writing, handler.request_deserializer, handler.response_serializer)

        async def yielding(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            raised = watch(method, context)
            try:
                result = inner(request, context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                elif result is not None:
                    for item in result:
                        yield item
            except Exception:
                raised[0] = True
                raise

        return make(yielding, handler.request_deserializer, handler.response_serializer)


def _code_name(call: Any, raised: bool) -> str:
    """The status the client got: the code the handler set; UNKNOWN for a raise that set none
    (context.abort sets one); DEADLINE_EXCEEDED or CANCELLED for a call that ended early."""
    code = call.code()
    if code is not None:
        return getattr(code, "name", str(code))
    if call.cancelled():
        remaining = call.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    return "UNKNOWN" if raised else "OK"

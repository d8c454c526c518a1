"""The auth interceptor in front of handlers of every kind: one in-process grpc.aio server
serves every method of every launch.v1 service (ReplicaService's stream-stream RunTasks
included) with a handler that answers OK, behind AuthErrorsInterceptor and a real API-key store
on SQLite. Without a good key no method may run; with one, each does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from launch_server.api.auth import AuthErrorsInterceptor
from launch_server.domain.keys import ApiKeyService
from launch_server.store.db import make_engine, upgrade
from launch_server.store.repositories import SqlApiKeyRepository
from tests.auth_rpcs import BAD_KEYS, Rpc, every_rpc, status_of
from tests.support import free_port

RPCS = list(every_rpc())


def permissive_handler(rpc: Rpc, ran: list[str]) -> grpc.RpcMethodHandler:
    """Answers one empty message, of the RPC's kind, and records that it ran."""
    ident = {"request_deserializer": lambda b: b, "response_serializer": lambda b: b}

    async def one(request: Any, context: Any) -> bytes:
        if rpc.method.client_streaming:
            async for _ in request:
                pass
        ran.append(rpc.path)
        return b""

    async def many(request: Any, context: Any) -> AsyncIterator[bytes]:
        yield await one(request, context)

    kinds = {
        (False, False): (grpc.unary_unary_rpc_method_handler, one),
        (True, False): (grpc.stream_unary_rpc_method_handler, one),
        (False, True): (grpc.unary_stream_rpc_method_handler, many),
        (True, True): (grpc.stream_stream_rpc_method_handler, many),
    }
    make, behaviour = kinds[(rpc.method.client_streaming, rpc.method.server_streaming)]
    return make(behaviour, **ident)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[str]]]:
    """(address, a good key, the paths of the handlers that ran), served from a thread's loop."""
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('auth')) / 'launch.db'}"
    upgrade(url)
    keys = ApiKeyService(SqlApiKeyRepository(make_engine(url)), cache_seconds=0)
    _, good = keys.create("alice")
    ran: list[str] = []
    port = free_port()
    loop = asyncio.new_event_loop()
    started, stop = asyncio.Event(), None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        server = grpc.aio.server(interceptors=[AuthErrorsInterceptor(keys)])
        by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for rpc in RPCS:
            by_service.setdefault(rpc.service, {})[rpc.method.name] = permissive_handler(rpc, ran)
        for service, handlers in by_service.items():
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        started.set()
        await stop.wait()
        await server.stop(None)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    while not started.is_set():
        thread.join(0.05)
    yield f"127.0.0.1:{port}", good, ran
    loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
    thread.join(10)


def test_every_kind_is_present() -> None:
    kinds = {(r.method.client_streaming, r.method.server_streaming) for r in RPCS}
    assert kinds == {(False, False), (True, False), (False, True), (True, True)}


@pytest.mark.parametrize("rpc", RPCS, ids=lambda r: r.path)
def test_refused_without_a_good_key_and_served_with_one(served: tuple[str, str, list[str]], rpc: Rpc) -> None:
    address, good, ran = served
    with grpc.insecure_channel(address) as channel:
        for what, metadata in BAD_KEYS.items():
            assert status_of(channel, rpc, metadata) == grpc.StatusCode.UNAUTHENTICATED, what
        assert rpc.path not in ran
        assert status_of(channel, rpc, (("authorization", f"Bearer {good}"),)) == grpc.StatusCode.OK
        assert rpc.path in ran

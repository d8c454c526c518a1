"""The `callback` post-inference hook: POSTs {task_id, status, result | result_url, traceback}
to the task's callback URL with retries and exponential backoff. A failing callback is recorded
on the task (callback_state, callback_error) and never changes the task's result.

Receivers are chosen by whoever submits a task, so none may cost anyone else: attempts run on the
event loop (aiohttp) rather than in the default executor that every database call shares, at most
`concurrency` at once, each ended by a total deadline however slowly the receiver answers. Host
lookups use a small pool of their own. Only allowed addresses are reached (callback_targets) and
redirects are never followed: a 3xx answer fails the callback."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from launch_server.domain.task_queue_ports import CallbackJob, CallbackQueue
from launch_server.domain.tasks import Task
from launch_server.settings import Settings
from launch_server.task_queue.callback_targets import (
    CallbackNetworks,
    CallbackRefused,
    Target,
    is_loopback_bind,
    resolve,
)

log = logging.getLogger(__name__)

DNS_THREADS = 4  # a lookup cannot be cancelled: a hung resolver holds one of these, nothing else


def payload(task: Task) -> dict[str, str]:
    body = {"task_id": task.task_id, "status": task.state.value, "traceback": task.traceback or None}
    if task.result_url:
        body["result_url"] = task.result_url
    else:
        body["result"] = task.result or None
    return body  # type: ignore[return-value]


class PinnedResolver(AbstractResolver):
    """Answers aiohttp's lookup with the addresses already checked for this attempt, so the
    connection goes where the check looked and no second lookup happens."""

    def __init__(self, target: Target) -> None:
        self.target = target

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host != self.target.host:
            raise OSError(errno.EACCES, f"{host} was not checked for this callback")
        return [
            ResolveResult(
                hostname=host,
                host=str(a),
                port=port,
                family=socket.AF_INET6 if a.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in self.target.addresses
        ]

    async def close(self) -> None:
        pass


def describe(exc: BaseException, deadline_s: float) -> str:
    """The failure in words for callback_error."""
    if isinstance(exc, TimeoutError):
        return f"no complete answer within the {deadline_s:g} s deadline (LAUNCH_CALLBACK_DEADLINE_S)"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = os.strerror(exc.errno) if exc.errno else (exc.os_error.strerror or str(exc.os_error))
        return f"cannot connect to {exc.host}:{exc.port}: {reason}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"answered HTTP {exc.status} {exc.message}".rstrip()
    if isinstance(exc, CallbackRefused):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class CallbackSender:
    """Claims due callbacks from the task store and sends them, each attempt a task of its own, so
    a slow receiver delays only its own callback."""

    def __init__(
        self,
        repo: CallbackQueue,
        *,
        networks: CallbackNetworks,
        max_attempts: int = 6,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        deadline_s: float = 10.0,
        concurrency: int = 32,
        poll_s: float = 0.5,
    ) -> None:
        self.repo = repo
        self.networks = networks
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.deadline_s = deadline_s
        self.concurrency = max(1, concurrency)
        self.poll_s = poll_s
        # A claim holds a callback past its attempt's deadline and the write that records it.
        self.hold_s = 2 * deadline_s + 10
        self._wake = asyncio.Event()
        self._dns = ThreadPoolExecutor(max_workers=DNS_THREADS, thread_name_prefix="launch-callback-dns")
        self._inflight: set[asyncio.Task] = set()

    @classmethod
    def from_settings(cls, repo: CallbackQueue, s: Settings) -> CallbackSender:
        """Loopback is allowed by default only when the server itself listens on loopback."""
        return cls(
            repo,
            networks=CallbackNetworks.parse(s.callback_networks, local=is_loopback_bind(s.bind)),
            max_attempts=s.callback_max_attempts,
            base_delay_s=s.callback_base_delay_s,
            deadline_s=s.callback_deadline_s,
            concurrency=s.callback_concurrency,
        )

    def wake(self, tasks: list[Task] | None = None) -> None:
        """Tasks finished (some may have callbacks due): look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self._wake.clear()
                free = self.concurrency - len(self._inflight)
                if free > 0:
                    try:
                        jobs = await asyncio.to_thread(self.repo.due_callbacks, free, self.hold_s)
                    except Exception:  # noqa: BLE001 - keep delivering through transient errors
                        log.exception("callback pass failed")
                        jobs = []
                    for job in jobs:
                        sending = asyncio.create_task(self._send(job))
                        self._inflight.add(sending)
                        sending.add_done_callback(self._sent)
                try:  # woken by a finished task or a freed slot
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
                except TimeoutError:
                    pass
        finally:
            # Unfinished attempts stay claimed until hold_s passes, then any server retries them.
            for sending in list(self._inflight):
                sending.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            self._dns.shutdown(wait=False, cancel_futures=True)

    def _sent(self, sending: asyncio.Task) -> None:
        self._inflight.discard(sending)
        self._wake.set()
        if not sending.cancelled() and sending.exception() is not None:  # recording the outcome failed
            log.error("callback attempt not recorded; retried once its claim lapses", exc_info=sending.exception())

    async def post(self, url: str, body: dict) -> None:
        """One attempt, all of it (lookup, connect, request, status line and headers) within the deadline."""
        async with asyncio.timeout(self.deadline_s):
            target = await resolve(url, self.networks, self._dns)
            connector = aiohttp.TCPConnector(resolver=PinnedResolver(target), use_dns_cache=False, limit=1)
            async with (
                aiohttp.ClientSession(connector=connector, trust_env=False) as session,
                session.post(url, json=body, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=None)) as r,
            ):
                if 300 <= r.status < 400:
                    where = r.headers.get("Location", "")
                    raise CallbackRefused(
                        f"refused: answered {r.status} to {where!r}; callbacks do not follow redirects"
                    )
                if not 200 <= r.status < 300:
                    raise aiohttp.ClientResponseError(r.request_info, (), status=r.status, message=r.reason or "")

    async def _send(self, job: CallbackJob) -> None:
        attempt = job.attempts + 1
        try:
            await self.post(job.url, payload(job.task))
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            error = f"attempt {attempt}: {describe(exc, self.deadline_s)}"
            final = isinstance(exc, CallbackRefused) or attempt >= self.max_attempts
            retry = None if final else min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
            await asyncio.to_thread(self.repo.callback_done, job.task.task_id, False, error, retry)
            return
        await asyncio.to_thread(self.repo.callback_done, job.task.task_id, True, "", None)

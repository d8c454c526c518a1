"""The `callback` post-inference hook: POSTs {task_id, status, result | result_url, traceback}
to the task's callback URL with retries and exponential backoff. A failing callback is recorded
on the task (callback_state, callback_error) and never changes the task's result."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request

from launch_server.domain.tasks import Task
from launch_server.store.task_repository import CallbackJob, SqlTaskRepository

log = logging.getLogger(__name__)


def payload(task: Task) -> dict[str, str]:
    body = {"task_id": task.task_id, "status": task.state.value, "traceback": task.traceback or None}
    if task.result_url:
        body["result_url"] = task.result_url
    else:
        body["result"] = task.result or None
    return body  # type: ignore[return-value]


def post(url: str, body: dict, timeout: float) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) checked at submit
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "non-2xx", response.headers, None)


class CallbackSender:
    def __init__(
        self,
        repo: SqlTaskRepository,
        *,
        max_attempts: int = 6,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        timeout_s: float = 5.0,
        poll_s: float = 0.5,
    ) -> None:
        self.repo = repo
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._wake = asyncio.Event()

    def kick(self, tasks: list[Task] | None = None) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                jobs = await asyncio.to_thread(self.repo.due_callbacks, 32, self.timeout_s * 4)
                await asyncio.gather(*(self._send(job) for job in jobs))
            except Exception:  # noqa: BLE001 - keep delivering through transient errors
                log.exception("callback pass failed")
                jobs = []
            if not jobs:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
                except TimeoutError:
                    pass

    async def _send(self, job: CallbackJob) -> None:
        attempt = job.attempts + 1
        try:
            await asyncio.to_thread(post, job.url, payload(job.task), self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried
            error = f"attempt {attempt}: {type(exc).__name__}: {exc}"
            retry = (
                None if attempt >= self.max_attempts else min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
            )
            await asyncio.to_thread(self.repo.callback_done, job.task.task_id, False, error, retry)
            return
        await asyncio.to_thread(self.repo.callback_done, job.task.task_id, True, "", None)

"""Endpoint rules and use cases: validation of settings, the status state machine, and the
create/update/delete operations that record intent in the database. The reconciler (serving/)
converges Ray Serve to what is recorded here; nothing in this module touches Ray."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol

from launch_server.domain.batch_limits import MAX_BATCH_SIZE, MAX_BATCH_WAIT_MS
from launch_server.domain.entities import Bundle, Page
from launch_server.domain.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from launch_server.domain.ports import BundleRepository
from launch_server.domain.resources import accelerator_for, parse_memory
from launch_server.domain.validation import (
    validate_http_url,
    validate_labels,
    validate_name,
    validate_page_size,
    validate_request_id,
)

# Upper bounds of the settings a client chooses (docs/limits.md lists them with the proto's).
MAX_CPUS = 256
MAX_GPUS = 16
MAX_WORKERS = 1000
MAX_PER_WORKER = 100
# per_worker × max_workers: the replica calls one endpoint keeps in flight; the dispatcher claims
# up to 64 queued tasks per free call, so this also bounds what one claim loads from the queue.
MAX_CALLS_IN_FLIGHT = 10_000
MAX_TASK_EXPIRY_S = 30 * 86400
MAX_QUEUE_SIZE = 10_000_000
MAX_HOOKS = 8
# Batch jobs run on endpoints of their own whose names use this prefix, which users cannot take;
# listings leave them out, task submission refuses them, and the dispatcher sends them one chunk per call.
BATCH_ENDPOINT_PREFIX = "launch-batch-"


def is_batch_endpoint(name: str) -> bool:
    return name.startswith(BATCH_ENDPOINT_PREFIX)


MAX_TASK_TIMEOUT_S = 7 * 86400  # task_timeout_seconds' upper bound: a task's lease is renewed this long at most
KNOWN_HOOKS = {"callback"}


class EndpointType(str, Enum):
    """How an endpoint is called: SYNC answers InferenceService.Predict, ASYNC takes tasks,
    STREAMING answers InferenceService.PredictStream with one message per yielded value."""

    SYNC = "SYNC"
    ASYNC = "ASYNC"
    STREAMING = "STREAMING"


# Each type's calls, named in the error a call meant for another type gets, so the caller learns
# what to call instead.
_CALLED_BY = {
    EndpointType.SYNC: ("sync", "call InferenceService.Predict (SyncEndpoint.predict in the SDK)"),
    EndpointType.ASYNC: (
        "async",
        "submit tasks to it instead (TaskService.CreateTask; AsyncEndpoint.predict in the SDK)",
    ),
    EndpointType.STREAMING: (
        "a streaming endpoint",
        "use InferenceService.PredictStream (StreamingEndpoint.predict in the SDK)",
    ),
}
# The types whose requests a replica answers within the call (the direct route serves them).
ANSWERED_TYPES = frozenset({EndpointType.SYNC, EndpointType.STREAMING})


def type_error(name: str, endpoint_type: EndpointType, accepted: Collection[EndpointType]) -> FailedPrecondition | None:
    """The error for a call that endpoint `name`'s type does not take (None when it takes it):
    Predict is for sync endpoints, PredictStream for streaming ones, tasks for async ones."""
    if endpoint_type in accepted:
        return None
    described, instead = _CALLED_BY[endpoint_type]
    return FailedPrecondition(f"model endpoint {name!r} is {described}: {instead}")


class EndpointStatus(str, Enum):
    UPDATE_PENDING = "UPDATE_PENDING"
    UPDATE_IN_PROGRESS = "UPDATE_IN_PROGRESS"
    READY = "READY"
    UPDATE_FAILED = "UPDATE_FAILED"
    DELETE_IN_PROGRESS = "DELETE_IN_PROGRESS"


@dataclass(frozen=True)
class EndpointSettings:
    """Everything a user chooses about an endpoint (what create and update validate)."""

    bundle_name: str
    endpoint_type: EndpointType = EndpointType.SYNC
    cpus: float = 3.0
    memory: str = "8Gi"
    gpus: int = 0
    gpu_type: str = ""
    storage: str = ""
    min_workers: int = 1
    max_workers: int = 1
    per_worker: int = 10
    post_inference_hooks: tuple[str, ...] = ()
    default_callback_url: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    task_expiry_seconds: int = 86400
    max_queue_size: int = 100_000
    # How long one async task may run on a worker before it is stopped and fails.
    task_timeout_seconds: int = 3600
    # Dynamic batching limits for a batch function; None keeps what the bundle's @launch.batched says.
    max_batch_size: int | None = None
    max_batch_wait_ms: int | None = None


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    owner: str
    name: str
    bundle_id: str
    bundle_name: str
    settings: EndpointSettings
    status: EndpointStatus
    status_reason: str
    generation: int
    created_at: datetime
    updated_at: datetime
    request_id: str | None = None

    def replace(self, **changes: object) -> Endpoint:
        return dataclasses.replace(self, **changes)

    @property
    def memory_bytes(self) -> int:
        return parse_memory("resources.memory", self.settings.memory)

    @property
    def accelerator_type(self) -> str | None:
        return accelerator_for("resources.gpu_type", self.settings.gpu_type) if self.settings.gpus else None


@dataclass(frozen=True)
class EndpointEvent:
    time: datetime
    status: EndpointStatus
    message: str


class EndpointRepository(Protocol):
    def add(self, endpoint: Endpoint, event: str) -> Endpoint: ...

    def get(self, owner: str, name: str) -> Endpoint | None: ...

    def get_by_id(self, endpoint_id: str) -> Endpoint | None: ...

    def get_by_request_id(self, owner: str, request_id: str) -> Endpoint | None: ...

    def list(self, owner: str, page_size: int, page_token: str) -> Page: ...

    def list_all(self) -> list[Endpoint]: ...

    def update_settings(self, endpoint: Endpoint, event: str) -> Endpoint:
        """Stores new settings, bumps the generation and resets status to UPDATE_PENDING."""
        ...

    def set_status(self, endpoint_id: str, status: EndpointStatus, reason: str, generation: int | None = None) -> bool:
        """Records a status change and an event; with generation, only if the row is still at it."""
        ...

    def add_event(self, endpoint_id: str, status: EndpointStatus, message: str) -> None: ...

    def events(self, endpoint_id: str, limit: int = 1000) -> list[EndpointEvent]: ...

    def remove(self, endpoint_id: str) -> None: ...


def validate_settings(s: EndpointSettings, prefix: str = "endpoint") -> None:
    """Each rule names its field; order follows the proto so the first error is the first field."""
    validate_name(f"{prefix}.bundle_name", s.bundle_name)
    if not isinstance(s.endpoint_type, EndpointType):
        raise InvalidArgument(f"{prefix}.endpoint_type", "must be sync, async or streaming")
    if not (math.isfinite(s.cpus) and 1 <= s.cpus <= MAX_CPUS):
        raise InvalidArgument(f"{prefix}.resources.cpus", f"must be between 1 and {MAX_CPUS}, got {s.cpus}")
    parse_memory(f"{prefix}.resources.memory", s.memory)
    if s.gpus < 0 or s.gpus > MAX_GPUS:
        raise InvalidArgument(f"{prefix}.resources.gpus", f"must be between 0 and {MAX_GPUS}, got {s.gpus}")
    if s.gpus > 0 and not s.gpu_type:
        raise InvalidArgument(f"{prefix}.resources.gpu_type", "is required when gpus > 0")
    if s.gpu_type:
        accelerator_for(f"{prefix}.resources.gpu_type", s.gpu_type)
    if s.storage:
        parse_memory(f"{prefix}.resources.storage", s.storage)
    if s.min_workers < 0 or s.min_workers > MAX_WORKERS:
        raise InvalidArgument(f"{prefix}.workers.min_workers", f"must be between 0 and {MAX_WORKERS}")
    if s.max_workers < max(1, s.min_workers) or s.max_workers > MAX_WORKERS:
        raise InvalidArgument(
            f"{prefix}.workers.max_workers",
            f"must be at least max(1, min_workers={s.min_workers}) and at most {MAX_WORKERS}, got {s.max_workers}",
        )
    if not 1 <= s.per_worker <= MAX_PER_WORKER:
        raise InvalidArgument(
            f"{prefix}.workers.per_worker", f"must be between 1 and {MAX_PER_WORKER}, got {s.per_worker}"
        )
    if s.per_worker * s.max_workers > MAX_CALLS_IN_FLIGHT:
        raise InvalidArgument(
            f"{prefix}.workers.per_worker",
            f"per_worker × max_workers must be at most {MAX_CALLS_IN_FLIGHT}, got {s.per_worker * s.max_workers}",
        )
    if len(s.post_inference_hooks) > MAX_HOOKS:
        raise InvalidArgument(f"{prefix}.post_inference_hooks", f"at most {MAX_HOOKS} hooks")
    for index, hook in enumerate(s.post_inference_hooks):
        if hook not in KNOWN_HOOKS:
            raise InvalidArgument(f"{prefix}.post_inference_hooks[{index}]", f"unknown hook {hook[:64]!r}")
    if s.default_callback_url:
        validate_http_url(f"{prefix}.default_callback_url", s.default_callback_url)
    validate_labels(f"{prefix}.labels", s.labels)
    if not 1 <= s.task_expiry_seconds <= MAX_TASK_EXPIRY_S:
        raise InvalidArgument(
            f"{prefix}.task_expiry_seconds",
            f"must be between 1 and {MAX_TASK_EXPIRY_S} (30 days), got {s.task_expiry_seconds}",
        )
    if not 1 <= s.max_queue_size <= MAX_QUEUE_SIZE:
        raise InvalidArgument(
            f"{prefix}.max_queue_size", f"must be between 1 and {MAX_QUEUE_SIZE}, got {s.max_queue_size}"
        )
    if not 1 <= s.task_timeout_seconds <= MAX_TASK_TIMEOUT_S:
        raise InvalidArgument(
            f"{prefix}.task_timeout_seconds",
            f"must be between 1 and {MAX_TASK_TIMEOUT_S} (seven days), got {s.task_timeout_seconds}",
        )
    if s.max_batch_size is not None and not 1 <= s.max_batch_size <= MAX_BATCH_SIZE:
        raise InvalidArgument(
            f"{prefix}.batching.max_batch_size", f"must be between 1 and {MAX_BATCH_SIZE}, got {s.max_batch_size}"
        )
    if s.max_batch_wait_ms is not None and not 0 <= s.max_batch_wait_ms <= MAX_BATCH_WAIT_MS:
        raise InvalidArgument(
            f"{prefix}.batching.max_wait_ms", f"must be between 0 and {MAX_BATCH_WAIT_MS}, got {s.max_batch_wait_ms}"
        )


class EndpointService:
    def __init__(
        self,
        repo: EndpointRepository,
        bundles: BundleRepository,
        *,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._repo = repo
        self._bundles = bundles
        # Wakes the reconciler so a change is acted on at once rather than at the next tick.
        self._on_change = on_change

    async def _bundle(self, owner: str, name: str, field_name: str) -> Bundle:
        bundle = await asyncio.to_thread(self._bundles.get, owner, name)
        if bundle is None:
            raise NotFound("model bundle", name)
        return bundle

    async def create(
        self, owner: str, name: str, settings: EndpointSettings, request_id: str = "", internal: bool = False
    ) -> Endpoint:
        """internal=True is for the endpoints batch jobs create for themselves; their names use a
        prefix users cannot take, and listings leave them out."""
        validate_request_id("request_id", request_id)
        validate_name("endpoint.name", name)
        if is_batch_endpoint(name) and not internal:
            raise InvalidArgument(
                "endpoint.name", f"names starting with {BATCH_ENDPOINT_PREFIX!r} are reserved for batch jobs"
            )
        validate_settings(settings)
        if request_id:
            existing = await asyncio.to_thread(self._repo.get_by_request_id, owner, request_id)
            if existing is not None:
                return existing
        bundle = await self._bundle(owner, settings.bundle_name, "endpoint.bundle_name")
        if await asyncio.to_thread(self._repo.get, owner, name) is not None:
            raise AlreadyExists("model endpoint", name)
        now = datetime.now(UTC)
        endpoint = Endpoint(
            endpoint_id=uuid.uuid4().hex,
            owner=owner,
            name=name,
            bundle_id=bundle.bundle_id,
            bundle_name=bundle.name,
            settings=settings,
            status=EndpointStatus.UPDATE_PENDING,
            status_reason="waiting for the serving layer",
            generation=1,
            created_at=now,
            updated_at=now,
            request_id=request_id or None,
        )
        created = await asyncio.to_thread(self._repo.add, endpoint, f"created with bundle {bundle.name!r}")
        self._on_change()
        return created

    async def get(self, owner: str, name: str) -> Endpoint:
        validate_name("name", name)
        endpoint = await asyncio.to_thread(self._repo.get, owner, name)
        if endpoint is None:
            raise NotFound("model endpoint", name)
        return endpoint

    async def list(self, owner: str, page_size: int, page_token: str) -> Page:
        size = validate_page_size("page_size", page_size)
        return await asyncio.to_thread(self._repo.list, owner, size, page_token)

    async def update(self, owner: str, name: str, changes: dict[str, object]) -> Endpoint:
        """Applies the changed settings (keys are EndpointSettings fields); a new bundle or any
        serving setting bumps the generation so the reconciler rolls it out."""
        current = await self.get(owner, name)
        if current.status is EndpointStatus.DELETE_IN_PROGRESS:
            raise FailedPrecondition(f"model endpoint {name!r} is being deleted")
        if not changes:
            raise InvalidArgument("update_mask", "must name at least one field to change")
        if "endpoint_type" in changes and changes["endpoint_type"] != current.settings.endpoint_type:
            raise InvalidArgument("update_mask", "endpoint_type cannot change; create a new endpoint")
        settings = dataclasses.replace(current.settings, **changes)  # type: ignore[arg-type]
        validate_settings(settings)
        bundle_id = current.bundle_id
        if settings.bundle_name != current.settings.bundle_name:
            bundle_id = (await self._bundle(owner, settings.bundle_name, "endpoint.bundle_name")).bundle_id
        described = ", ".join(f"{k}={v!r}" for k, v in sorted(changes.items()))
        updated = await asyncio.to_thread(
            self._repo.update_settings,
            current.replace(settings=settings, bundle_id=bundle_id, bundle_name=settings.bundle_name),
            f"edited: {described}",
        )
        self._on_change()
        return updated

    async def delete(self, owner: str, name: str) -> Endpoint:
        """Marks the endpoint DELETE_IN_PROGRESS; the reconciler tears down its application and
        then removes the row, so a crash mid-delete resumes rather than leaking replicas."""
        endpoint = await self.get(owner, name)
        await asyncio.to_thread(
            self._repo.set_status, endpoint.endpoint_id, EndpointStatus.DELETE_IN_PROGRESS, "deletion requested"
        )
        self._on_change()
        return endpoint.replace(status=EndpointStatus.DELETE_IN_PROGRESS)

    async def events(self, owner: str, name: str) -> tuple[Endpoint, list[EndpointEvent]]:
        endpoint = await self.get(owner, name)
        return endpoint, await asyncio.to_thread(self._repo.events, endpoint.endpoint_id)

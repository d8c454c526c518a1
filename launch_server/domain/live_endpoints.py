"""What the serving layer knows right now about every endpoint, as the rest of the server asks
it: the router, the dispatcher, the task service, the batch runner and the endpoint servicer all
read this one interface (the reconciler owns the view and implements it), never the reconciler's
own tables. Every read is in memory, so the request paths never wait on the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from launch_server.domain.endpoints import Endpoint, EndpointStatus


@dataclass(frozen=True, slots=True)
class LiveRoute:
    """Where an endpoint is deployed (its Serve application) and whether it serves now, with
    the status the serving layer last reported for it: callers turn these into an error's
    reason (a predict that cannot be served) or a listing's worker counts."""

    app_name: str
    serving: bool  # a call may be sent now (READY, or rolling out with replicas running)
    status: EndpointStatus = EndpointStatus.UPDATE_IN_PROGRESS
    reason: str = ""
    available_workers: int = 0
    unavailable_workers: int = 0


class LiveEndpoints(Protocol):
    def endpoint_for(self, owner: str, name: str) -> Endpoint | None:
        """The owner's endpoint by name, as last read from the database; None when not known."""
        ...

    def endpoint(self, endpoint_id: str) -> Endpoint | None: ...

    def endpoints(self) -> list[Endpoint]:
        """Every endpoint the view holds."""
        ...

    def route(self, endpoint_id: str) -> LiveRoute | None:
        """None when the endpoint has no deployment (yet)."""
        ...

    def capacity(self, endpoint_id: str) -> int:
        """How many calls the endpoint may have in flight (per_worker x max_workers, at least 1)
        while it serves; 0 when it does not."""
        ...

    def app_name(self, endpoint: Endpoint) -> str:
        """The Serve application the endpoint is (or would be) deployed as, deployed or not:
        its creation logs are found by this name even before its first deploy."""
        ...

    @property
    def ray_down(self) -> str:
        """Why the Ray cluster is lost; empty while it is there."""
        ...

    @property
    def ready(self) -> bool:
        """True once a first pass has filled the view: before that, an endpoint missing from it
        may simply not have been read yet."""
        ...

    @property
    def error(self) -> str:
        """Why the last pass failed (or what the serving layer is doing instead); empty when it
        did not."""
        ...

    async def wait_ready(self, timeout: float) -> bool:
        """Waits up to `timeout` seconds for the first pass; True once it has run."""
        ...

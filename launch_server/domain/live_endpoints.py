"""What the serving layer knows right now about every endpoint, as the rest of the server asks
it: the router, the dispatcher, the task service and the batch runner all read this one
interface (the reconciler owns the view and implements it), never the reconciler's own tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from launch_server.domain.endpoints import Endpoint


@dataclass(frozen=True, slots=True)
class LiveRoute:
    """Where an endpoint is deployed (its Serve application) and whether it serves now."""

    app_name: str
    serving: bool


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

    @property
    def ray_down(self) -> str:
        """Why the Ray cluster is lost; empty while it is there."""
        ...

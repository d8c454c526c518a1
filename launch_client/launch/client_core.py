"""ClientCore: the state every part of LaunchClient shares (its Connection, the endpoint calls
and the self-hosted hooks) and the calls more than one part makes (paged lists, stored results),
declared once so each part (bundles_api, endpoints_api, tasks_api, batch_jobs_api, self_hosted)
can be read and type-checked on its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .connection import Connection
from .endpoint_calls import EndpointCalls
from .results import download_result, load_pickled_result

# Items asked for per page of a List RPC (the server's most).
PAGE_SIZE = 1000


class ClientCore:
    connection: Connection
    endpoint_calls: EndpointCalls
    self_hosted: bool
    upload_bundle_fn: Callable[[bytes, Any], None] | None
    upload_batch_csv_fn: Callable[[str, Any], None] | None
    bundle_location_fn: Callable[[], Any] | None
    batch_csv_location_fn: Callable[[], Any] | None
    endpoint_auth_decorator_fn: Callable[[dict[str, Any]], dict[str, Any]]

    def _pages(self, method: Callable, request_type: type, field: str) -> Iterator[Any]:
        """Every item of a paged List RPC."""
        token = ""
        while True:
            response = self.connection.call(
                method, request_type(page_size=PAGE_SIZE, page_token=token), idempotent=True
            )
            yield from getattr(response, field)
            token = response.next_page_token
            if not token:
                return

    def download_result(self, result_url: str) -> bytes:
        """The stored bytes behind a result_url, streamed through the server."""
        return download_result(self.connection, result_url)

    def load_pickled_result(self, result_url: str) -> Any:
        """Downloads and unpickles a result (this runs in the caller's process, never the server)."""
        return load_pickled_result(self.connection, result_url)

"""Self-hosted mode's hooks: where the caller's own code uploads bundles and batch input files,
and how it rewrites an endpoint's creation payload, instead of the server storing them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .client_core import ClientCore


class SelfHostedHooks(ClientCore):
    def register_upload_bundle_fn(self, upload_bundle_fn: Callable[[bytes, Any], None]) -> None:
        """Self-hosted mode: called as upload_bundle_fn(serialized_bundle, bundle_url)."""
        self.upload_bundle_fn = upload_bundle_fn

    def register_bundle_location_fn(self, bundle_location_fn: Callable[[], Any]) -> None:
        """Self-hosted mode: returns a new bundle_url for each bundle."""
        self.bundle_location_fn = bundle_location_fn

    def register_upload_batch_csv_fn(self, upload_batch_csv_fn: Callable[[str, Any], None]) -> None:
        """Self-hosted mode: called as upload_batch_csv_fn(csv_text, csv_url)."""
        self.upload_batch_csv_fn = upload_batch_csv_fn

    def register_batch_csv_location_fn(self, batch_csv_location_fn: Callable[[], Any]) -> None:
        """Self-hosted mode: returns a new location for each batch input file."""
        self.batch_csv_location_fn = batch_csv_location_fn

    def register_endpoint_auth_decorator(self, endpoint_auth_decorator_fn: Callable) -> None:
        """Self-hosted mode: rewrites the endpoint creation payload (a dict) before it is sent."""
        self.endpoint_auth_decorator_fn = endpoint_auth_decorator_fn

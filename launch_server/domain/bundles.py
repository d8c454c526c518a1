"""Model bundle use cases: streamed upload, self-hosted registration, get, list, delete.

The service never unpickles anything: it moves bytes, checks their size and sha256, and records
metadata. Storage and repository calls are blocking, so they run in worker threads to keep the
server's event loop free."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from launch_server.domain.entities import Bundle, BundleSpec, PackagingType, Page
from launch_server.domain.errors import AlreadyExists, ChecksumMismatch, InvalidArgument, NotFound, ResourceExhausted
from launch_server.domain.locations import LocationError
from launch_server.domain.ownership import client_may_read, results_prefix
from launch_server.domain.ports import BundleRepository, ObjectStorage
from launch_server.domain.validation import (
    validate_bundle_spec,
    validate_name,
    validate_page_size,
    validate_request_id,
    validate_sha256,
)
from launch_server.domain.zip_check import check_zip


@dataclass(frozen=True)
class UploadHeader:
    spec: BundleSpec
    size_bytes: int
    sha256: str
    request_id: str = ""


class BundleService:
    def __init__(
        self,
        repo: BundleRepository,
        storage: ObjectStorage,
        max_upload_bytes: int,
        readable_prefixes: tuple[str, ...] = (),
    ) -> None:
        self._repo = repo
        self._storage = storage
        self._max_upload_bytes = max_upload_bytes
        # Self-hosted bundles and batch input files may only point under the storage root or these
        # prefixes (canonical, like every location they are compared with), so a client can never
        # make the server or a replica read an arbitrary local path.
        self._readable_prefixes = tuple(storage.canonical(p) for p in readable_prefixes if p)

    @property
    def storage(self) -> ObjectStorage:
        return self._storage

    def _check_header(self, header: UploadHeader) -> None:
        validate_request_id("header.request_id", header.request_id)
        validate_bundle_spec(header.spec, prefix="header.bundle")
        if header.size_bytes <= 0:
            raise InvalidArgument("header.size_bytes", "must be positive")
        if header.size_bytes > self._max_upload_bytes:
            raise ResourceExhausted(
                f"header.size_bytes: {header.size_bytes} bytes exceeds the upload limit of "
                f"{self._max_upload_bytes} bytes"
            )
        validate_sha256("header.sha256", header.sha256)

    async def upload(self, owner: str, header: UploadHeader, chunks: AsyncIterator[bytes]) -> Bundle:
        """Streams chunks to a temporary object, checks size and sha256, then commits the object
        and inserts the row. Any failure, including the client going away, aborts the write, so
        an interrupted or corrupt upload leaves no bundle and no object."""
        self._check_header(header)
        if header.request_id:
            existing = await asyncio.to_thread(self._repo.get_by_request_id, owner, header.request_id)
            if existing is not None:
                async for _ in chunks:  # drain so the client's stream completes normally
                    pass
                return existing
        if await asyncio.to_thread(self._repo.get, owner, header.spec.name) is not None:
            raise AlreadyExists("model bundle", header.spec.name)

        bundle_id = uuid.uuid4().hex
        writer = self._storage.begin_write(f"bundles/{bundle_id}")
        digest = hashlib.sha256()
        received = 0
        committed_location: str | None = None
        # Zip bundles are also spooled to a local temporary file (never held whole in memory) so
        # their entry names can be checked before anything is registered.
        spool = tempfile.TemporaryFile() if header.spec.packaging_type is PackagingType.ZIP else None
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > header.size_bytes:
                    raise ChecksumMismatch("chunk", f"received more than the declared {header.size_bytes} bytes")
                digest.update(chunk)
                await asyncio.to_thread(writer.write, chunk)
                if spool is not None:
                    spool.write(chunk)
            if received != header.size_bytes:
                raise ChecksumMismatch(
                    "header.size_bytes",
                    f"declared {header.size_bytes} bytes but received {received}",
                )
            if digest.hexdigest() != header.sha256:
                raise ChecksumMismatch("header.sha256", "does not match the sha256 of the received bytes")
            if spool is not None:
                spool.seek(0)
                module_paths = [
                    header.spec.metadata["load_predict_fn_module_path"],
                    header.spec.metadata["load_model_fn_module_path"],
                ]
                await asyncio.to_thread(check_zip, spool, module_paths)
            committed_location = await asyncio.to_thread(writer.commit)
            bundle = Bundle(
                bundle_id=bundle_id,
                owner=owner,
                name=header.spec.name,
                packaging_type=header.spec.packaging_type,
                form=header.spec.form,
                requirements=header.spec.requirements,
                env_params=dict(header.spec.env_params),
                metadata=dict(header.spec.metadata),
                app_config_json=header.spec.app_config_json,
                python_version=header.spec.python_version,
                location=committed_location,
                size_bytes=received,
                sha256=header.sha256,
                managed_artifact=True,
                created_at=datetime.now(UTC),
                request_id=header.request_id or None,
            )
            return await asyncio.to_thread(self._repo.add, bundle)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(writer.abort))
            if committed_location is not None:
                await asyncio.shield(asyncio.to_thread(self._storage.delete, committed_location))
            raise
        finally:
            if spool is not None:
                spool.close()

    def check_readable(self, field: str, location: str, owner: str) -> str:
        """The location's canonical URL when the owner may have it read: under the storage root
        (but never another owner's bundles, batch files or results) or a configured prefix. The
        caller stores and reads the returned form, the one that was checked."""
        if not location:
            raise InvalidArgument(field, "is required")
        try:
            canonical = self._storage.canonical(location)
        except LocationError as exc:
            raise InvalidArgument(field, str(exc)) from None
        root = self._storage.root_location
        if not client_may_read(canonical, root, results_prefix(owner), self._readable_prefixes):
            allowed = [root.url, *(p.url for p in self._readable_prefixes)]
            raise InvalidArgument(
                field, f"{location!r} is not under a location this server may read for you (configured: {allowed})"
            )
        return canonical.url

    async def create_from_location(self, owner: str, spec: BundleSpec, request_id: str = "") -> Bundle:
        """Self-hosted mode: the client placed the artifact itself; the server checks the location
        is one it is configured to read and that the object exists, and records its size."""
        validate_request_id("request_id", request_id)
        validate_bundle_spec(spec)
        spec = dataclasses.replace(spec, location=self.check_readable("bundle.location", spec.location, owner))
        if request_id:
            existing = await asyncio.to_thread(self._repo.get_by_request_id, owner, request_id)
            if existing is not None:
                return existing
        try:
            size = await asyncio.to_thread(self._storage.size_of, spec.location)
        except FileNotFoundError:
            raise InvalidArgument("bundle.location", f"no object at {spec.location!r}") from None
        bundle = Bundle(
            bundle_id=uuid.uuid4().hex,
            owner=owner,
            name=spec.name,
            packaging_type=spec.packaging_type,
            form=spec.form,
            requirements=spec.requirements,
            env_params=dict(spec.env_params),
            metadata=dict(spec.metadata),
            app_config_json=spec.app_config_json,
            python_version=spec.python_version,
            location=spec.location,
            size_bytes=size,
            sha256="",
            managed_artifact=False,
            created_at=datetime.now(UTC),
            request_id=request_id or None,
        )
        return await asyncio.to_thread(self._repo.add, bundle)

    async def get(self, owner: str, name: str) -> Bundle:
        validate_name("name", name)
        bundle = await asyncio.to_thread(self._repo.get, owner, name)
        if bundle is None:
            raise NotFound("model bundle", name)
        return bundle

    async def list(self, owner: str, page_size: int, page_token: str) -> Page:
        size = validate_page_size("page_size", page_size)
        return await asyncio.to_thread(self._repo.list, owner, size, page_token)

    async def delete(self, owner: str, name: str) -> Bundle:
        """Deletes the row first (the in-use check and the delete share one transaction), then
        the object; an object whose delete fails is an orphan in storage, never a dangling row."""
        validate_name("name", name)
        bundle = await asyncio.to_thread(self._repo.delete, owner, name)
        if bundle.managed_artifact and self._storage.contains(bundle.location):
            await asyncio.to_thread(self._storage.delete, bundle.location)
        return bundle

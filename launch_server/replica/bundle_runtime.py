"""The replica runtime: loads one model bundle and answers predict requests with it.

This module runs inside Ray workers on any node, so it imports only the standard library,
cloudpickle, the domain's plain values and the storage adapters (boto3 only when the storage is
S3) -- never grpc, ray, sqlmodel or the server's api/store layers. What configures it travels as
plain dicts (`BundleDescriptor.to_dict()`, `RuntimeConfig.to_dict()`), and requests and answers
are the domain's plain dataclasses (domain/requests.py), so the server and the workers share no
objects beyond JSON-like values.

Errors are split on purpose: a bundle that cannot be loaded raises `BundleLoadError` (the replica
must not come up, and the reconciler shows the message to the user), while anything that goes
wrong while answering a request becomes a FAILURE answer (replica/failures.py) -- a bad request
or a raising predict function must never take the replica down.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import io
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import cloudpickle

from launch_server.domain.errors import InvalidArgument, ResourceExhausted
from launch_server.domain.json_input import MAX_APP_CONFIG_BYTES, MAX_ARGS_JSON_BYTES, parse_json_object
from launch_server.domain.locations import LocationError
from launch_server.domain.ownership import client_may_read
from launch_server.domain.requests import InferenceAnswer, InferenceRequest
from launch_server.domain.zip_check import DEFAULT_LIMITS, ZipLimits, limit_violation
from launch_server.replica.batching import BatchLimits, BatchSpecError, batch_limits_of, split_results
from launch_server.replica.call_kinds import CallKind, call_kind_of
from launch_server.replica.failures import RequestFailure, answer_or_failure
from launch_server.replica.figures_reporter import FIGURES
from launch_server.replica.replica_loop import ReplicaLoop
from launch_server.storage import open_storage
from launch_server.storage.sweeper import sync_result_key

PACKAGING_CLOUDPICKLE = "CLOUDPICKLE"
PACKAGING_ZIP = "ZIP"
FORM_PREDICT_FN_OR_CLS = "PREDICT_FN_OR_CLS"
FORM_WITH_MODEL = "LOAD_PREDICT_FN_WITH_MODEL"
FORM_WITH_LOAD_MODEL_FN = "LOAD_PREDICT_FN_WITH_LOAD_MODEL_FN"
MODULE_PATH_EXAMPLE = "my_module1.my_inference_file.f"
_DRIVE = re.compile(r"^[A-Za-z]:")
_URL_CHUNK = 1 << 20
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")


def current_python_version() -> str:
    """The "major.minor" a bundle must have been pickled with to load here."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


class BundleLoadError(Exception):
    """The bundle cannot be loaded; the message says what to change."""


def _from_known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Refuses unknown keys: server and workers run the same code, so an unknown key is a bug
    that should surface at deploy time rather than be silently dropped."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TypeError(f"{cls.__name__}: unknown keys {unknown}")
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class BundleDescriptor:
    """What a replica needs to know about a bundle, independent of the server's entities."""

    bundle_id: str
    name: str
    packaging_type: str
    form: str
    location: str
    metadata: dict[str, str] = field(default_factory=dict)
    app_config_json: str = ""
    python_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BundleDescriptor:
        values = _from_known_fields(cls, data)
        values["metadata"] = {str(k): str(v) for k, v in (values.get("metadata") or {}).items()}
        return cls(**values)

    @classmethod
    def from_bundle(cls, bundle: Any) -> BundleDescriptor:
        """From the domain's `Bundle` (duck-typed, so this module need not import the domain's entities);
        enum fields are reduced to their string values."""

        def text(value: Any) -> str:
            return str(getattr(value, "value", value))

        return cls(
            bundle_id=bundle.bundle_id,
            name=bundle.name,
            packaging_type=text(bundle.packaging_type),
            form=text(bundle.form),
            location=bundle.location,
            metadata=dict(bundle.metadata),
            app_config_json=bundle.app_config_json or "",
            python_version=bundle.python_version or "",
        )


def _default_work_dir() -> str:
    # One fixed folder under the temp dir, so replicas of one bundle on a node share one extraction.
    return os.path.join(tempfile.gettempdir(), "launch-bundles")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where bundles and results live, and the limits a replica enforces per request."""

    storage_url: str
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    work_dir: str = field(default_factory=_default_work_dir)
    allow_local_file_urls: bool = False
    max_result_bytes: int = 16 << 20
    url_timeout_s: float = 30.0
    max_url_bytes: int = 256 << 20
    # Pickled results go under this key prefix; the server gives each owner its own prefix so
    # DownloadResult can refuse another owner's result without a database lookup.
    results_prefix: str = "results"
    # A sync endpoint's pickled results go in their own folder, swept after
    # LAUNCH_SYNC_RESULT_RETENTION_S (storage/sweeper.py); an async task's belong to its row.
    sync_results: bool = False
    # The endpoint's batch limits (EndpointSettings.max_batch_size / max_batch_wait_ms); None
    # keeps what the bundle's @launch.batched says (replica/batching.py).
    max_batch_size: int | None = None
    max_batch_wait_ms: int | None = None
    # False when the servers run with LAUNCH_METRICS=0: the replica counts and reports nothing.
    figures: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeConfig:
        return cls(**_from_known_fields(cls, data))


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """urllib follows redirects to ftp:// too; a url request may only ever reach http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise RequestFailure(f"url redirected to {newurl!r}; only http(s) redirects are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _unsafe_zip_entry(name: str) -> str | None:
    """Why an entry would land outside the extraction folder, or None when it is safe."""
    normalized = name.replace("\\", "/")
    if "\x00" in normalized:
        return "contains a NUL character"
    if normalized.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(normalized):
        return "starts with a drive letter"
    if ".." in normalized.split("/"):
        return "contains a '..' segment"
    return None


def _copy_bounded(src: IO[bytes], out: IO[bytes], budget: int, limit: int) -> int:
    """Copies an entry while counting what is written, so an archive whose declared sizes lie
    still stops at the unpack limit; returns the budget left."""
    while chunk := src.read(1 << 20):
        budget -= len(chunk)
        if budget < 0:
            raise BundleLoadError(f"the bundle's zip unpacks to more than {limit} bytes, over the limit")
        out.write(chunk)
    return budget


def extract_zip(data: bytes, dest: Path, limits: ZipLimits = DEFAULT_LIMITS) -> Path:
    """Unpacks a zip bundle into dest, refusing any entry that would escape it and any archive
    over the unpack limits (domain/zip_check.py: entry count, unpacked size, compression ratio).

    Extraction goes to a sibling folder that is renamed into place, so a replica never sees a
    half-unpacked bundle and replicas racing on one node end up sharing one complete copy (bundle
    ids are immutable, so an existing folder is the same content)."""
    if dest.is_dir():
        return dest
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise BundleLoadError(f"the bundle's artifact is not a valid zip file: {exc}") from None
    with archive:
        infos = archive.infolist()
        for info in infos:
            why = _unsafe_zip_entry(info.filename)
            if why:
                raise BundleLoadError(
                    f"zip entry {info.filename!r} {why}, so it would escape the folder the bundle is "
                    "unpacked into; rebuild the zip with create_model_bundle_from_dirs"
                )
        too_big = limit_violation(infos, limits)
        if too_big:
            raise BundleLoadError(f"the bundle's zip {too_big}, so it is not unpacked")
        budget = limits.max_unpacked_bytes
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.part"
        staging_root = staging.resolve()
        try:
            for info in infos:
                target = (staging / info.filename.replace("\\", "/")).resolve()
                if target != staging_root and staging_root not in target.parents:
                    raise BundleLoadError(f"zip entry {info.filename!r} would escape its folder")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    budget = _copy_bounded(src, out, budget, limits.max_unpacked_bytes)
            try:
                os.rename(staging, dest)
            except OSError:
                if not dest.is_dir():
                    raise
                # Another replica on this node won the race; its copy is identical.
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def _forget_foreign_modules(root: Path, top_names: set[str]) -> None:
    """Drops cached modules that share a top-level name with the bundle's folders but were
    imported from elsewhere, so `my_module1` means this bundle's copy, not a stale one."""
    for name in list(sys.modules):
        if name.split(".", 1)[0] not in top_names:
            continue
        module = sys.modules[name]
        origins = [getattr(module, "__file__", None) or ""]
        origins += list(getattr(module, "__path__", []) or [])
        if not any(origin and (root == Path(origin) or root in Path(origin).parents) for origin in origins):
            del sys.modules[name]


def _resolve_module_path(dotted: str, what: str, tops: set[str]) -> Callable[..., Any]:
    module_name, _, attr = (dotted or "").rpartition(".")
    if not module_name or not attr:
        raise BundleLoadError(f"{what} is {dotted!r}; it must be a dotted path such as {MODULE_PATH_EXAMPLE!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BundleLoadError(
            f"{what} {dotted!r}: cannot import {module_name!r} from the bundle's folders {sorted(tops)}: {exc}"
        ) from None
    except Exception:
        raise BundleLoadError(
            f"{what} {dotted!r}: importing {module_name!r} raised:\n{traceback.format_exc()}"
        ) from None
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise BundleLoadError(f"{what} {dotted!r}: module {module_name!r} has no {attr!r}") from None
    if not callable(target):
        raise BundleLoadError(f"{what} {dotted!r} names a {type(target).__name__}, not a function")
    return target


def _call_user_code(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Runs a user's load-time code; its failure becomes a load error that carries the traceback."""
    try:
        return fn(*args, **kwargs)
    except Exception:
        raise BundleLoadError(f"{what} raised while loading the bundle:\n{traceback.format_exc()}") from None


async def settle(value: Any) -> Any:
    """An async call's value, on the replica loop: what a coroutine returns, or the list of what
    an async generator yields (closed however the reading ends)."""
    if inspect.isasyncgen(value):
        try:
            return [item async for item in value]
        finally:
            await value.aclose()
    if inspect.isawaitable(value):
        return await value
    return value


class BundleRuntime:
    """One loaded bundle: builds its predict function once and answers requests with it.

    `predict` and `call` are safe to call from several threads at once as far as this class goes;
    whether the user's predict function is, is up to the caller's thread pool size. They block, so
    they run in the predict pool, never on the replica loop (async user code runs there, see
    call_async; calls.py decides which of the two paths a request takes)."""

    def __init__(self, descriptor: BundleDescriptor, config: RuntimeConfig, loop: ReplicaLoop | None = None) -> None:
        self.descriptor = descriptor
        self.config = config
        self._replica_loop = loop
        self._loop_lock = threading.Lock()
        self.storage = open_storage(config.storage_url, config.s3_endpoint_url, config.s3_region)
        self.app_config = self._parse_app_config()
        self.download_s = 0.0  # how long fetching the bundle took (a cold-start phase)
        if descriptor.packaging_type == PACKAGING_CLOUDPICKLE:
            self.predict_fn = self._load_cloudpickle()
        elif descriptor.packaging_type == PACKAGING_ZIP:
            self.predict_fn = self._load_zip()
        else:
            raise BundleLoadError(
                f"bundle {descriptor.name!r} has packaging type {descriptor.packaging_type!r}; "
                f"this replica loads {PACKAGING_CLOUDPICKLE!r} and {PACKAGING_ZIP!r}"
            )
        if not callable(self.predict_fn):
            raise BundleLoadError(
                f"bundle {descriptor.name!r} produced a {type(self.predict_fn).__name__}, not a callable "
                "predict function"
            )
        self.kind = call_kind_of(self.predict_fn)
        self.batching = self._batch_limits()

    @property
    def replica_loop(self) -> ReplicaLoop:
        """The loop async user code runs on (replica_loop.py): the replica's, or one of this
        runtime's own, started when first needed (a runtime used outside a replica)."""
        with self._loop_lock:
            if self._replica_loop is None:
                self._replica_loop = ReplicaLoop().start()
            return self._replica_loop

    # ----- loading -----

    def _batch_limits(self) -> BatchLimits | None:
        """The limits a batch function is served with (batching.py), None for a plain one."""
        try:
            limits = batch_limits_of(self.predict_fn, self.config.max_batch_size, self.config.max_batch_wait_ms)
        except BatchSpecError as exc:
            raise BundleLoadError(f"bundle {self.descriptor.name!r}: {exc}") from None
        if limits is not None and self.kind in (CallKind.GENERATOR, CallKind.ASYNC_GENERATOR):
            raise BundleLoadError(
                f"bundle {self.descriptor.name!r}: a batch function returns one list of results per batch, "
                f"so it cannot be a {self.kind.value}; stream from a plain predict function instead"
            )
        return limits

    def _parse_app_config(self) -> dict[str, Any] | None:
        text = self.descriptor.app_config_json
        if not text or not text.strip():
            return None
        try:
            return parse_json_object("app_config", text, MAX_APP_CONFIG_BYTES)
        except InvalidArgument as exc:
            raise BundleLoadError(f"the bundle's {exc.message}") from None

    def _download(self) -> bytes:
        location = self.descriptor.location
        started = time.perf_counter()
        try:
            data = self.storage.read_bytes(location)
            self.download_s = time.perf_counter() - started
            return data
        except FileNotFoundError:
            raise BundleLoadError(f"the bundle's artifact is missing at {location!r}") from None
        except Exception as exc:
            raise BundleLoadError(
                f"cannot read the bundle's artifact at {location!r}: {type(exc).__name__}: {exc}"
            ) from None

    def _with_model(self, load_predict_fn: Callable[..., Any], model: Any) -> Any:
        if self.app_config is None:
            return _call_user_code("load_predict_fn", load_predict_fn, model)
        return _call_user_code("load_predict_fn", load_predict_fn, model, app_config=self.app_config)

    def _load_cloudpickle(self) -> Callable[..., Any]:
        d = self.descriptor
        here = current_python_version()
        if d.python_version and d.python_version != here:
            raise BundleLoadError(
                f"bundle {d.name!r} was pickled with Python {d.python_version}, but this replica runs "
                f"Python {here}; cloudpickle bundles only load on the Python version that made them. "
                f"Re-create the bundle from Python {here}, or serve it on Python {d.python_version}"
            )
        data = self._download()
        try:
            obj = cloudpickle.loads(data)
        except Exception as exc:
            hint = ""
            if isinstance(exc, ImportError):
                hint = " (add the missing package to the bundle's requirements)"
            raise BundleLoadError(f"cannot unpickle bundle {d.name!r}: {type(exc).__name__}: {exc}{hint}") from None
        if d.form == FORM_PREDICT_FN_OR_CLS:
            if isinstance(obj, dict):
                raise BundleLoadError(f"bundle {d.name!r} has form {d.form} but its pickle is a dict")
            if inspect.isclass(obj):
                return _call_user_code(f"{obj.__name__}()", obj)
            return obj
        keys = {FORM_WITH_MODEL: "model", FORM_WITH_LOAD_MODEL_FN: "load_model_fn"}
        if d.form not in keys:
            raise BundleLoadError(f"bundle {d.name!r} has unknown form {d.form!r}")
        expected = {"load_predict_fn", keys[d.form]}
        if not isinstance(obj, dict) or set(obj) != expected:
            found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise BundleLoadError(
                f"bundle {d.name!r} has form {d.form}, so its pickle must be a dict with keys "
                f"{sorted(expected)}; found {found}"
            )
        if d.form == FORM_WITH_MODEL:
            model = obj["model"]
        else:
            model = _call_user_code("load_model_fn", obj["load_model_fn"])
        return self._with_model(obj["load_predict_fn"], model)

    def _load_zip(self) -> Callable[..., Any]:
        d = self.descriptor
        paths = {
            "load_predict_fn_module_path": d.metadata.get("load_predict_fn_module_path", ""),
            "load_model_fn_module_path": d.metadata.get("load_model_fn_module_path", ""),
        }
        for key, value in paths.items():
            if not value:
                raise BundleLoadError(
                    f"zip bundle {d.name!r} has no {key} in its metadata (e.g. {MODULE_PATH_EXAMPLE!r})"
                )
        if not _SAFE_ID.fullmatch(d.bundle_id) or d.bundle_id in (".", ".."):
            raise BundleLoadError(f"bundle id {d.bundle_id!r} cannot name a folder")
        root = extract_zip(self._download(), Path(self.config.work_dir) / d.bundle_id).resolve()
        tops = {p.name for p in root.iterdir() if not p.name.startswith(".")}
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        importlib.invalidate_caches()
        _forget_foreign_modules(root, tops)
        load_predict_fn = _resolve_module_path(
            paths["load_predict_fn_module_path"], "load_predict_fn_module_path", tops
        )
        load_model_fn = _resolve_module_path(paths["load_model_fn_module_path"], "load_model_fn_module_path", tops)
        model = _call_user_code("load_model_fn", load_model_fn)
        return self._with_model(load_predict_fn, model)

    # ----- answering -----

    def predict(self, request: InferenceRequest) -> InferenceAnswer:
        """Answers one request; never raises. The failure reason or traceback is the answer's
        traceback."""
        return answer_or_failure(self._predict, request)

    def predict_many(self, requests: list[InferenceRequest]) -> list[InferenceAnswer]:
        """Answers requests one by one, in order: one call carries many, so per-call overhead is
        paid once for a group (async tasks)."""
        return [self.predict(request) for request in requests]

    def arguments(self, request: InferenceRequest) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The predict function's arguments for one request: the bytes a url names (read here,
        so this blocks for a url) or the request's keyword arguments. RequestFailure for a request
        that cannot run."""
        if not isinstance(request, InferenceRequest):
            raise RequestFailure(f"a request must be an InferenceRequest, not {type(request).__name__}")
        if bool(request.url) == bool(request.args_json):
            raise RequestFailure("a request needs exactly one of url or args")
        if request.url:
            return (self.read_url(request.url),), {}
        try:
            args = parse_json_object(
                "args", request.args_json, MAX_ARGS_JSON_BYTES, "a JSON object of keyword arguments"
            )
        except InvalidArgument as exc:
            raise RequestFailure(exc.message) from None
        return (), args

    def batch_input(self, request: InferenceRequest) -> Any:
        """What a batch function gets for one request (batching.py): the bytes its url names
        (read here, so this blocks for a url) or its keyword arguments as one dict.
        RequestFailure for a request that cannot run."""
        args, kwargs = self.arguments(request)
        return args[0] if args else kwargs

    def call_batch(self, inputs: list[Any]) -> list[Any]:
        """A batch function's results for `inputs`, one per input in order, in a predict-pool
        thread (async code runs on the replica loop while it waits). Raises what the function
        raises, and RequestFailure when it does not return one result per input."""
        if self.kind.on_loop:
            return self.replica_loop.run_sync(self.call_batch_async(inputs))
        started = time.perf_counter()
        try:
            return split_results(self.settle_sync(self.predict_fn(inputs)), len(inputs))
        finally:
            FIGURES.observe("compute", time.perf_counter() - started)

    async def call_batch_async(self, inputs: list[Any]) -> list[Any]:
        """call_batch for an async batch function, on the replica loop."""
        started = time.perf_counter()
        try:
            return split_results(await settle(self.predict_fn(inputs)), len(inputs))
        finally:
            FIGURES.observe("compute", time.perf_counter() - started)

    def call(self, request: InferenceRequest) -> Any:
        """The predict function's value for one request, in a thread that is not the replica
        loop's (the predict pool): a generator's value is the list of what it yields, async code
        runs on the replica loop while this thread waits for it, and a batch function gets a batch
        of one. Raises RequestFailure for a request it cannot run (the reason is the answer),
        anything else when the user's code fails; batch chunk work (batch_chunks.py) turns each
        into its input's outcome."""
        if self.batching is not None:
            return self.call_batch([self.batch_input(request)])[0]
        args, kwargs = self.arguments(request)
        if self.kind.on_loop:
            return self.replica_loop.run_sync(self._settle_call(args, kwargs))
        started = time.perf_counter()
        try:
            return self.settle_sync(self.predict_fn(*args, **kwargs))
        finally:
            FIGURES.observe("compute", time.perf_counter() - started)

    def settle_sync(self, value: Any) -> Any:
        """A value as one result, in a predict-pool thread: a generator's yielded values as a list;
        a coroutine or async generator (returned by a plain function) settled on the replica loop."""
        if inspect.isgenerator(value):
            try:
                return list(value)
            finally:
                value.close()
        if inspect.isawaitable(value) or inspect.isasyncgen(value):
            return self.replica_loop.run_sync(settle(value))
        return value

    async def call_async(self, request: InferenceRequest) -> Any:
        """The value of an async predict function (kind.on_loop) for one request, on the replica
        loop; a url is read off the loop, in its default executor."""
        if isinstance(request, InferenceRequest) and request.url:
            args, kwargs = await asyncio.get_running_loop().run_in_executor(None, self.arguments, request)
        else:
            args, kwargs = self.arguments(request)
        return await self._settle_call(args, kwargs)

    async def _settle_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return await settle(self.predict_fn(*args, **kwargs))
        finally:
            FIGURES.observe("compute", time.perf_counter() - started)

    def _predict(self, request: InferenceRequest) -> InferenceAnswer:
        return self.answer_value(self.call(request), request.return_pickled)

    def _check_result_size(self, size: int) -> None:
        if size > self.config.max_result_bytes:
            raise RequestFailure(f"result is {size} bytes, over the limit of {self.config.max_result_bytes}")

    def answer_value(self, value: Any, return_pickled: bool) -> InferenceAnswer:
        """One value as an answer: stored pickled (blocking: storage) or as JSON text; RequestFailure
        when it cannot be (not picklable, not JSON, over max_result_bytes)."""
        if return_pickled:
            try:
                data = cloudpickle.dumps(value)
            except Exception as exc:
                raise RequestFailure(
                    f"the predict function returned a {type(value).__name__} that cannot be pickled: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            self._check_result_size(len(data))
            name = f"{uuid.uuid4().hex}.pkl"
            if self.config.sync_results:
                key = sync_result_key(self.config.results_prefix, name)
            else:
                key = f"{self.config.results_prefix}/{name}"
            try:
                location = self.storage.put_bytes(key, data)
            except ResourceExhausted as exc:  # storage/space.py: the volume is full
                raise RequestFailure(f"the pickled result could not be stored: {exc}") from None
            return InferenceAnswer(result_url=location)
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise RequestFailure(
                f"the predict function returned a {type(value).__name__}, which is not JSON-serializable "
                f"({exc}); return JSON values (dict, list, str, int, float, bool, None) or send the "
                "request with return_pickled=True"
            ) from None
        self._check_result_size(len(text.encode("utf-8")))
        return InferenceAnswer(result=text)

    # ----- url inputs -----

    def read_url(self, url: str) -> bytes:
        """The bytes a url request names: http(s), or storage locations; local files elsewhere
        only when the operator allowed them (a replica must not read its host's files for anyone)."""
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("http", "https"):
            return self._read_http(url)
        if scheme in ("s3", "file"):
            # Judged and read in canonical form (domain/locations.py): decoded once, normalized,
            # links resolved; another owner's bundles, batch files and results are never read.
            try:
                location = self.storage.canonical(url)
            except LocationError as exc:
                raise RequestFailure(f"url {url!r}: {exc}") from None
            root = self.storage.root_location
            if location.within(root):
                if not client_may_read(location, root, self.config.results_prefix, ()):
                    raise RequestFailure(f"url {url!r}: no such object")
                return self._read_storage(location.url)
            if location.scheme == "file" and self.config.allow_local_file_urls:
                return self._read_local_file(location.url)
            raise RequestFailure(
                f"url {url!r} is outside this server's storage ({self.storage.root_url}); "
                "use an http(s) url or a location under the storage"
            )
        raise RequestFailure(f"url {url!r} has an unsupported scheme; use http(s), s3:// or file://")

    def _too_big(self, url: str, size: int | str) -> RequestFailure:
        return RequestFailure(f"url {url!r} is {size} bytes, over the limit of {self.config.max_url_bytes}")

    def _read_storage(self, url: str) -> bytes:
        try:
            size = self.storage.size_of(url)
        except FileNotFoundError:
            raise RequestFailure(f"url {url!r}: no such object") from None
        if size > self.config.max_url_bytes:
            raise self._too_big(url, size)
        return self.storage.read_bytes(url)

    def _read_local_file(self, url: str) -> bytes:
        path = Path(self.storage.canonical(url).path)  # a canonical file:// URL, checked by read_url
        try:
            size = path.stat().st_size
            if size > self.config.max_url_bytes:
                raise self._too_big(url, size)
            return path.read_bytes()
        except OSError as exc:
            raise RequestFailure(f"url {url!r}: {exc.strerror or exc}") from None

    def _read_http(self, url: str) -> bytes:
        limit = self.config.max_url_bytes
        timeout = self.config.url_timeout_s
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(_HttpOnlyRedirects())
        request = urllib.request.Request(url, headers={"User-Agent": "launch-replica"})
        try:
            with opener.open(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > limit:
                    raise self._too_big(url, int(length))
                buffer = bytearray()
                while chunk := response.read(_URL_CHUNK):
                    buffer += chunk
                    if len(buffer) > limit:
                        raise self._too_big(url, f"more than {limit}")
                    if time.monotonic() > deadline:
                        raise RequestFailure(f"url {url!r}: download took longer than {timeout:g} s")
                return bytes(buffer)
        except urllib.error.HTTPError as exc:
            raise RequestFailure(f"url {url!r} answered HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise RequestFailure(f"url {url!r}: cannot fetch: {exc.reason}") from None
        except TimeoutError:
            raise RequestFailure(f"url {url!r}: no answer within {timeout:g} s") from None
        except OSError as exc:
            raise RequestFailure(f"url {url!r}: cannot fetch: {exc}") from None

"""The replica runtime without Ray: real bundles built by the SDK's packaging code, written to a
real LocalStorage, loaded and called the way a replica does."""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import logging
import os
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from launch.packaging import (
    FORM_PREDICT_FN_OR_CLS,
    FORM_WITH_LOAD_MODEL_FN,
    FORM_WITH_MODEL,
    pickle_bundle,
    zip_directories,
)

from launch_server.domain.requests import (
    AssemblePart,
    AssembleRequest,
    ChunkRequest,
    InferenceAnswer,
    InferenceRequest,
)
from launch_server.replica.bundle_runtime import (
    BundleDescriptor,
    BundleLoadError,
    BundleRuntime,
    RuntimeConfig,
    current_python_version,
)
from launch_server.replica.deployment import LaunchReplica
from launch_server.storage.local import LocalStorage

PY = current_python_version()


@pytest.fixture(autouse=True)
def _isolated_imports() -> Iterator[None]:
    """Zip bundles put their folder on sys.path and import modules; undo that between tests."""
    path = list(sys.path)
    modules = set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
def config(storage: LocalStorage, tmp_path: Path) -> RuntimeConfig:
    return RuntimeConfig(storage_url=storage.root_url, work_dir=str(tmp_path / "work"))


def cloudpickle_bundle(
    storage: LocalStorage,
    form: str,
    *,
    predict_fn_or_cls: Any = None,
    load_predict_fn: Any = None,
    model: Any = None,
    load_model_fn: Any = None,
    app_config: dict[str, Any] | None = None,
    python_version: str = PY,
) -> BundleDescriptor:
    data, metadata = pickle_bundle(form, predict_fn_or_cls, load_predict_fn, model, load_model_fn, None)
    location = storage.put_bytes("bundles/b1.pkl", data)
    return BundleDescriptor(
        bundle_id="b1",
        name="my-bundle",
        packaging_type="CLOUDPICKLE",
        form=form,
        location=location,
        metadata=metadata,
        app_config_json=json.dumps(app_config) if app_config is not None else "",
        python_version=python_version,
    )


def args(**kwargs: Any) -> InferenceRequest:
    return InferenceRequest(args_json=json.dumps(kwargs), return_pickled=False)


def keywords(**kw: Any) -> dict[str, Any]:
    return kw


# ----- the three cloudpickle forms -----


def test_predict_fn_keeps_ints_as_ints(storage: LocalStorage, config: RuntimeConfig) -> None:
    descriptor = cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=keywords)
    runtime = BundleRuntime(descriptor, config)
    answer = runtime.predict(args(x=1, y=[2, 3.5], z="s"))
    assert answer == InferenceAnswer(
        state="SUCCESS",
        result='{"x": 1, "y": [2, 3.5], "z": "s"}',
        result_url="",
        traceback="",
    )
    assert json.loads(runtime.predict(args(x=1)).result)["x"] is not True
    assert isinstance(json.loads(runtime.predict(args(x=1)).result)["x"], int)


def test_callable_class_is_instantiated_once(storage: LocalStorage, config: RuntimeConfig) -> None:
    class Counter:
        instances = 0

        def __init__(self) -> None:
            type(self).instances += 1
            self.calls = 0

        def __call__(self, x: int) -> dict[str, int]:
            self.calls += 1
            return {"instances": type(self).instances, "calls": self.calls, "x": x}

    runtime = BundleRuntime(cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=Counter), config)
    results = [json.loads(runtime.predict(args(x=i)).result) for i in range(3)]
    assert results == [{"instances": 1, "calls": i + 1, "x": i} for i in range(3)]


def test_callable_instance_is_used_as_is(storage: LocalStorage, config: RuntimeConfig) -> None:
    class Scale:
        def __init__(self, factor: int) -> None:
            self.factor = factor

        def __call__(self, x: int) -> int:
            return x * self.factor

    runtime = BundleRuntime(cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=Scale(7)), config)
    assert runtime.predict(args(x=6)).result == "42"


def test_load_predict_fn_with_model(storage: LocalStorage, config: RuntimeConfig) -> None:
    def load_predict_fn(model: dict[str, int]) -> Any:
        return lambda word: model.get(word, -1)

    descriptor = cloudpickle_bundle(storage, FORM_WITH_MODEL, load_predict_fn=load_predict_fn, model={"a": 1, "b": 2})
    runtime = BundleRuntime(descriptor, config)
    assert [runtime.predict(args(word=w)).result for w in ("a", "b", "c")] == ["1", "2", "-1"]


def test_load_predict_fn_with_load_model_fn_runs_load_once(storage: LocalStorage, config: RuntimeConfig) -> None:
    loads: list[int] = []

    def load_model_fn() -> list[int]:
        loads.append(1)
        return [len(loads), 100]

    def load_predict_fn(model: list[int]) -> Any:
        return lambda x: [x + m for m in model]

    descriptor = cloudpickle_bundle(
        storage, FORM_WITH_LOAD_MODEL_FN, load_predict_fn=load_predict_fn, load_model_fn=load_model_fn
    )
    runtime = BundleRuntime(descriptor, config)
    assert runtime.predict(args(x=1)).result == "[2, 101]"
    assert runtime.predict(args(x=2)).result == "[3, 102]"


def test_app_config_is_passed_as_keyword(storage: LocalStorage, config: RuntimeConfig) -> None:
    def load_predict_fn(model: int, app_config: dict[str, Any]) -> Any:
        return lambda x: {"y": x * model + app_config["offset"], "mode": app_config["mode"]}

    descriptor = cloudpickle_bundle(
        storage,
        FORM_WITH_MODEL,
        load_predict_fn=load_predict_fn,
        model=10,
        app_config={"offset": 5, "mode": "fast"},
    )
    answer = BundleRuntime(descriptor, config).predict(args(x=3))
    assert json.loads(answer.result) == {"y": 35, "mode": "fast"}


# ----- load errors -----


def test_python_version_mismatch_is_refused(storage: LocalStorage, config: RuntimeConfig) -> None:
    descriptor = cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=keywords, python_version="2.7")
    with pytest.raises(BundleLoadError) as info:
        BundleRuntime(descriptor, config)
    assert "Python 2.7" in str(info.value)
    assert f"Python {PY}" in str(info.value)


def test_garbage_pickle_is_a_load_error(storage: LocalStorage, config: RuntimeConfig) -> None:
    location = storage.put_bytes("bundles/bad.pkl", b"this is not a pickle")
    descriptor = BundleDescriptor("bad", "bad-bundle", "CLOUDPICKLE", FORM_PREDICT_FN_OR_CLS, location, {}, "", PY)
    with pytest.raises(BundleLoadError, match="cannot unpickle bundle 'bad-bundle'"):
        BundleRuntime(descriptor, config)


def test_pickle_not_matching_its_form_is_a_load_error(storage: LocalStorage, config: RuntimeConfig) -> None:
    location = storage.put_bytes("bundles/f.pkl", cloudpickle.dumps(keywords))
    descriptor = BundleDescriptor("f", "f", "CLOUDPICKLE", FORM_WITH_MODEL, location, {}, "", PY)
    with pytest.raises(BundleLoadError, match="must be a dict with keys"):
        BundleRuntime(descriptor, config)


def test_missing_artifact_is_a_load_error(storage: LocalStorage, config: RuntimeConfig) -> None:
    location = (Path(storage.root) / "bundles" / "gone.pkl").as_uri()
    descriptor = BundleDescriptor("g", "g", "CLOUDPICKLE", FORM_PREDICT_FN_OR_CLS, location, {}, "", PY)
    with pytest.raises(BundleLoadError, match="missing"):
        BundleRuntime(descriptor, config)


def test_raising_load_model_fn_is_a_load_error_with_traceback(storage: LocalStorage, config: RuntimeConfig) -> None:
    def load_model_fn() -> None:
        raise RuntimeError("weights not found")

    descriptor = cloudpickle_bundle(
        storage, FORM_WITH_LOAD_MODEL_FN, load_predict_fn=lambda m: m, load_model_fn=load_model_fn
    )
    with pytest.raises(BundleLoadError) as info:
        BundleRuntime(descriptor, config)
    assert "load_model_fn raised" in str(info.value)
    assert "RuntimeError: weights not found" in str(info.value)


# ----- zip bundles -----


def write_zip_source(tmp_path: Path) -> list[str]:
    mod1 = tmp_path / "src" / "my_module1"
    mod2 = tmp_path / "src" / "my_module2"
    mod1.mkdir(parents=True)
    mod2.mkdir(parents=True)
    (mod1 / "my_inference_file.py").write_text(
        "from my_module2.helpers import suffix\n"
        "\n"
        "def f(model, app_config=None):\n"
        "    extra = (app_config or {}).get('extra', '')\n"
        "    return lambda text: model['prefix'] + text + suffix() + extra\n"
    )
    (mod2 / "helpers.py").write_text("def suffix():\n    return '!'\n")
    (mod2 / "load.py").write_text("def load_model():\n    return {'prefix': 'hello '}\n")
    return [str(mod1), str(mod2)]


def zip_descriptor(storage: LocalStorage, data: bytes, **changes: Any) -> BundleDescriptor:
    values: dict[str, Any] = {
        "bundle_id": "z1",
        "name": "zip-bundle",
        "packaging_type": "ZIP",
        "form": "UNSPECIFIED",
        "location": storage.put_bytes("bundles/z1.zip", data),
        "metadata": {
            "load_predict_fn_module_path": "my_module1.my_inference_file.f",
            "load_model_fn_module_path": "my_module2.load.load_model",
        },
        # Zip bundles are source: another Python version must not stop them loading.
        "python_version": "2.7",
    }
    values.update(changes)
    return BundleDescriptor(**values)


def test_zip_bundle_resolves_module_paths_in_the_unzipped_root(
    storage: LocalStorage, config: RuntimeConfig, tmp_path: Path
) -> None:
    data = zip_directories(write_zip_source(tmp_path))
    runtime = BundleRuntime(zip_descriptor(storage, data), config)
    assert runtime.predict(args(text="world")).result == '"hello world!"'
    assert (Path(config.work_dir) / "z1" / "my_module1" / "my_inference_file.py").is_file()


def test_zip_bundle_with_app_config(storage: LocalStorage, config: RuntimeConfig, tmp_path: Path) -> None:
    data = zip_directories(write_zip_source(tmp_path))
    descriptor = zip_descriptor(storage, data, bundle_id="z2", app_config_json='{"extra": "?"}')
    assert BundleRuntime(descriptor, config).predict(args(text="you")).result == '"hello you!?"'


def test_zip_bundle_with_unknown_module_path(storage: LocalStorage, config: RuntimeConfig, tmp_path: Path) -> None:
    data = zip_directories(write_zip_source(tmp_path))
    metadata = {
        "load_predict_fn_module_path": "my_module1.nope.f",
        "load_model_fn_module_path": "my_module2.load.load_model",
    }
    with pytest.raises(BundleLoadError, match="my_module1.nope") as info:
        BundleRuntime(zip_descriptor(storage, data, bundle_id="z3", metadata=metadata), config)
    assert "my_module1" in str(info.value) and "my_module2" in str(info.value)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("../evil.py", "'..' segment"),
        ("my_module1/../../evil.py", "'..' segment"),
        ("/tmp/evil.py", "absolute path"),
        ("C:/evil.py", "drive letter"),
    ],
)
def test_zip_entries_that_escape_are_refused(
    storage: LocalStorage, config: RuntimeConfig, tmp_path: Path, entry: str, why: str
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("my_module1/ok.py", "x = 1\n")
        zf.writestr(entry, "print('pwned')\n")
    with pytest.raises(BundleLoadError, match="would escape") as info:
        BundleRuntime(zip_descriptor(storage, buffer.getvalue(), bundle_id="evil"), config)
    assert repr(entry) in str(info.value) and why in str(info.value)
    work = Path(config.work_dir)
    assert not (work / "evil").exists()
    assert not (work / "evil.py").exists() and not (work.parent / "evil.py").exists()


# ----- url requests -----


def bytes_echo(data: bytes) -> dict[str, Any]:
    return {"length": len(data), "text": data.decode()}


@pytest.fixture
def echo_runtime(storage: LocalStorage, config: RuntimeConfig) -> BundleRuntime:
    return BundleRuntime(cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=bytes_echo), config)


def test_url_under_the_storage_root(storage: LocalStorage, echo_runtime: BundleRuntime) -> None:
    location = storage.put_bytes("inputs/one.txt", b"payload")
    answer = echo_runtime.predict(InferenceRequest(url=location, return_pickled=False))
    assert answer.state == "SUCCESS", answer
    assert json.loads(answer.result) == {"length": 7, "text": "payload"}


def test_file_url_outside_the_root_is_refused_by_default(
    storage: LocalStorage, config: RuntimeConfig, echo_runtime: BundleRuntime, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    sneaky = storage.root_url + "/../secret.txt"
    for url in (outside.as_uri(), sneaky):
        answer = echo_runtime.predict(InferenceRequest(url=url))
        assert answer.state == "FAILURE"
        assert "outside this server's storage" in answer.traceback
        assert "secret" not in answer.result
    allowed = BundleRuntime(
        echo_runtime.descriptor, RuntimeConfig(**{**config.to_dict(), "allow_local_file_urls": True})
    )
    assert json.loads(allowed.predict(InferenceRequest(url=outside.as_uri())).result)["text"] == "secret"


def test_url_naming_another_owners_objects_is_refused(
    storage: LocalStorage, config: RuntimeConfig, echo_runtime: BundleRuntime, tmp_path: Path
) -> None:
    """Storage urls are judged in canonical form: another owner's results, any bundle artifact or
    batch file, and links that point out of the root are never read for a request."""
    mine = BundleRuntime(
        echo_runtime.descriptor, RuntimeConfig(**{**config.to_dict(), "results_prefix": "results/mine"})
    )
    own = storage.put_bytes("results/mine/r.pkl", b"my result")
    theirs = storage.put_bytes("results/theirs/r.pkl", b"their result")
    bundle = storage.put_bytes("bundles/0123", b"their code")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.txt", storage.root / "link.txt")
    assert json.loads(mine.predict(InferenceRequest(url=own)).result)["text"] == "my result"
    root = storage.root_url
    for url in (
        theirs,
        bundle,
        f"{root}/results/mine/%2E%2E/theirs/r.pkl",
        f"{root}/results/mine/../theirs/r.pkl",
        f"{root}/results/mine/%252E%252E/theirs/r.pkl",
        f"{root}/link.txt",
    ):
        answer = mine.predict(InferenceRequest(url=url))
        assert answer.state == "FAILURE", url
        assert "their" not in answer.result and "secret" not in answer.result, url


def test_unsupported_scheme_and_too_big_url(
    storage: LocalStorage, config: RuntimeConfig, echo_runtime: BundleRuntime
) -> None:
    answer = echo_runtime.predict(InferenceRequest(url="ftp://example.com/x"))
    assert answer.state == "FAILURE" and "unsupported scheme" in answer.traceback
    location = storage.put_bytes("inputs/big.bin", b"x" * 100)
    small = BundleRuntime(echo_runtime.descriptor, RuntimeConfig(**{**config.to_dict(), "max_url_bytes": 10}))
    answer = small.predict(InferenceRequest(url=location))
    assert answer.state == "FAILURE"
    assert "is 100 bytes, over the limit of 10" in answer.traceback


@pytest.fixture
def http_url() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/input.txt":
                self.send_error(404, "Not Found")
                return
            body = b"over http"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_url(echo_runtime: BundleRuntime, http_url: str) -> None:
    answer = echo_runtime.predict(InferenceRequest(url=f"{http_url}/input.txt"))
    assert answer.state == "SUCCESS", answer
    assert json.loads(answer.result) == {"length": 9, "text": "over http"}
    missing = echo_runtime.predict(InferenceRequest(url=f"{http_url}/missing"))
    assert missing.state == "FAILURE" and "HTTP 404" in missing.traceback


def test_http_url_over_the_size_limit(
    storage: LocalStorage, config: RuntimeConfig, echo_runtime: BundleRuntime, http_url: str
) -> None:
    small = BundleRuntime(echo_runtime.descriptor, RuntimeConfig(**{**config.to_dict(), "max_url_bytes": 4}))
    answer = small.predict(InferenceRequest(url=f"{http_url}/input.txt"))
    assert answer.state == "FAILURE"
    assert "over the limit of 4" in answer.traceback


# ----- results and failures -----


def test_return_pickled_stores_the_result(storage: LocalStorage, config: RuntimeConfig) -> None:
    def predict(n: int) -> dict[str, Any]:
        return {"set": set(range(n)), "tuple": (n, "x"), "bytes": b"\x00\x01"}

    runtime = BundleRuntime(cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=predict), config)
    answer = runtime.predict(InferenceRequest(args_json='{"n": 3}', return_pickled=True))
    assert answer.state == "SUCCESS", answer
    assert answer.result == ""
    assert answer.result_url.startswith(storage.root_url + "/results/")
    value = cloudpickle.loads(storage.read_bytes(answer.result_url))
    assert value == {"set": {0, 1, 2}, "tuple": (3, "x"), "bytes": b"\x00\x01"}


def test_raising_predict_gives_failure_with_traceback(storage: LocalStorage, config: RuntimeConfig) -> None:
    def predict(x: int) -> int:
        raise ValueError(f"kaboom {x}")

    runtime = BundleRuntime(cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=predict), config)
    answer = runtime.predict(args(x=42))
    assert answer.state == "FAILURE"
    assert answer.traceback.startswith("Traceback (most recent call last)")
    assert "ValueError: kaboom 42" in answer.traceback
    assert answer.result == "" and answer.result_url == ""
    # A wrong keyword is the user's error too, and also never raises out of predict().
    assert "unexpected keyword argument 'y'" in runtime.predict(args(y=1)).traceback


def test_non_json_result_is_a_failure(storage: LocalStorage, config: RuntimeConfig) -> None:
    runtime = BundleRuntime(
        cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=lambda: {1, 2}), config
    )
    answer = runtime.predict(InferenceRequest(args_json="{}"))
    assert answer.state == "FAILURE"
    assert "returned a set, which is not JSON-serializable" in answer.traceback
    assert "return_pickled=True" in answer.traceback


def test_result_over_the_limit_is_a_failure(storage: LocalStorage, config: RuntimeConfig) -> None:
    small = RuntimeConfig(**{**config.to_dict(), "max_result_bytes": 100})
    runtime = BundleRuntime(
        cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=lambda n: "x" * n), small
    )
    assert runtime.predict(args(n=98)).state == "SUCCESS"  # 98 + 2 quotes = 100 bytes
    answer = runtime.predict(args(n=200))
    assert answer == InferenceAnswer(
        state="FAILURE",
        result="",
        result_url="",
        traceback="result is 202 bytes, over the limit of 100",
    )
    pickled = runtime.predict(InferenceRequest(args_json='{"n": 200}', return_pickled=True))
    assert pickled.state == "FAILURE" and "over the limit of 100" in pickled.traceback
    assert not (Path(storage.root) / "results").exists()


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (InferenceRequest(), "exactly one of url or args"),
        (InferenceRequest(url="file:///x", args_json="{}"), "exactly one of url or args"),
        (InferenceRequest(args_json="[1, 2]"), "must be a JSON object"),
        (InferenceRequest(args_json="{nope"), "not valid JSON"),
    ],
)
def test_malformed_requests(echo_runtime: BundleRuntime, request_: InferenceRequest, reason: str) -> None:
    answer = echo_runtime.predict(request_)
    assert answer.state == "FAILURE"
    assert reason in answer.traceback


def test_predict_many_answers_in_order(storage: LocalStorage, config: RuntimeConfig) -> None:
    runtime = BundleRuntime(
        cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=lambda x: 10 // x), config
    )
    answers = runtime.predict_many([args(x=1), args(x=0), args(x=5)])
    assert [a.state for a in answers] == ["SUCCESS", "FAILURE", "SUCCESS"]
    assert answers[0].result == "10" and answers[2].result == "2"
    assert "ZeroDivisionError" in answers[1].traceback


# ----- plain-dict round trips and the replica class -----


def test_descriptor_and_config_travel_as_plain_json(storage: LocalStorage, config: RuntimeConfig) -> None:
    descriptor = cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=keywords, app_config={"a": 1})
    assert BundleDescriptor.from_dict(json.loads(json.dumps(descriptor.to_dict()))) == descriptor
    assert RuntimeConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(TypeError, match="unknown keys"):
        RuntimeConfig.from_dict({**config.to_dict(), "typo": 1})


def test_replica_runs_user_code_off_the_event_loop(
    storage: LocalStorage, config: RuntimeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    def where(x: int) -> dict[str, Any]:
        return {"x": x, "thread": threading.current_thread().name}

    descriptor = cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=where)
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        replica = LaunchReplica(descriptor.to_dict(), config.to_dict())
    assert any("my-bundle" in r.getMessage() and f"Python {PY}" in r.getMessage() for r in caplog.records)

    async def run() -> tuple[InferenceAnswer, list[InferenceAnswer], str]:
        one = await replica(args(x=1))
        many = await replica.predict_many([args(x=2), args(x=3)])
        return one, many, threading.current_thread().name

    one, many, loop_thread = asyncio.run(run())
    result = json.loads(one.result)
    assert result["x"] == 1
    assert result["thread"].startswith("launch-predict") and result["thread"] != loop_thread
    assert [json.loads(a.result)["x"] for a in many] == [2, 3]
    assert replica.check_health() is None


def test_replica_refuses_a_bundle_it_cannot_load(storage: LocalStorage, config: RuntimeConfig) -> None:
    descriptor = cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=keywords, python_version="3.0")
    with pytest.raises(BundleLoadError, match="Python 3.0"):
        LaunchReplica(descriptor.to_dict(), config.to_dict())


# ----- batch chunk work -----


def test_a_chunk_writes_each_outcome_and_assemble_joins_them(storage: LocalStorage, config: RuntimeConfig) -> None:
    descriptor = cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=lambda x: 10 // x)
    replica = LaunchReplica(descriptor.to_dict(), config.to_dict())
    chunk = ChunkRequest(items=(args(x=1), args(x=0), InferenceRequest()), format="json", output_key="batch/j/0")

    async def run() -> tuple[InferenceAnswer, InferenceAnswer]:
        ran = await replica.run_chunk(chunk, timeout_s=30)
        parts = (AssemblePart(location=json.loads(ran.result)["location"]), AssemblePart(error="lost", count=2))
        return ran, await replica.assemble(AssembleRequest(parts=parts, format="json", output_key="results/j.json"))

    ran, assembled = asyncio.run(run())
    summary = json.loads(ran.result)
    assert (ran.state, summary["succeeded"], summary["failed"]) == ("SUCCESS", 1, 2)
    entries = json.loads(storage.read_bytes(summary["location"]))
    assert entries[0] == {"result": 10}
    assert "ZeroDivisionError" in entries[1]["error"]
    assert entries[2] == {"error": "a request needs exactly one of url or args"}  # its reason, no traceback
    assert (assembled.state, json.loads(assembled.result)) == ("SUCCESS", {"count": 5})
    joined = json.loads(storage.read_bytes(assembled.result_url))
    assert joined[:3] == entries and joined[3:] == [{"error": "lost"}, {"error": "lost"}]


def test_a_pickle_chunk_keeps_python_values(storage: LocalStorage, config: RuntimeConfig) -> None:
    descriptor = cloudpickle_bundle(storage, FORM_PREDICT_FN_OR_CLS, predict_fn_or_cls=lambda n: set(range(n)))
    replica = LaunchReplica(descriptor.to_dict(), config.to_dict())
    chunk = ChunkRequest(items=(args(n=2),), format="pickle", output_key="batch/j/0")
    summary = json.loads(asyncio.run(replica.run_chunk(chunk)).result)
    assert cloudpickle.loads(storage.read_bytes(summary["location"])) == [{"result": {0, 1}}]

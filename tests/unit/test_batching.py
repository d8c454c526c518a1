"""Dynamic batching in the replica, without Ray (replica/batcher.py, batching.py): a real
LaunchReplica loads real bundles (pickled functions marked with the SDK's launch.batched, a zip
bundle's module) and answers through its real pool and loop. The batch functions here are
module-level, so they are pickled by reference and share the gate and the record of batch sizes
with the test; events, not timings, decide what runs together."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import launch
import launch.batching as sdk_batching
import pytest
from launch.packaging import FORM_PREDICT_FN_OR_CLS, FORM_WITH_MODEL, pickle_bundle, zip_directories

from launch_server.domain import batch_limits
from launch_server.domain.requests import ChunkRequest, InferenceAnswer, InferenceRequest
from launch_server.replica import batching
from launch_server.replica.batcher import DEADLINE_MESSAGE
from launch_server.replica.bundle_runtime import (
    BundleDescriptor,
    BundleLoadError,
    RuntimeConfig,
    current_python_version,
)
from launch_server.replica.deployment import LaunchReplica
from launch_server.replica.stoppable import timeout_message
from launch_server.storage.local import LocalStorage

SEEN: list[list[Any]] = []  # each call's inputs, in call order
GATE = threading.Event()  # a batch with an input {"wait": true} holds until it is set
GATE2 = threading.Event()  # ... and one with {"wait2": true} until this one is
ENTERED = threading.Event()  # set when a batch function starts


def args(**kwargs: Any) -> InferenceRequest:
    return InferenceRequest(args_json=json.dumps(kwargs))


def results(answers: list[InferenceAnswer]) -> list[Any]:
    assert all(a.succeeded for a in answers), answers
    return [json.loads(a.result) for a in answers]


def _hold(inputs: list[Any]) -> None:
    SEEN.append(list(inputs))
    ENTERED.set()
    if any(isinstance(i, dict) and i.get("wait") for i in inputs):
        assert GATE.wait(10)
    if any(isinstance(i, dict) and i.get("wait2") for i in inputs):
        assert GATE2.wait(10)


@launch.batched(max_batch_size=4)
def double(inputs: list[dict[str, Any]]) -> list[Any]:
    _hold(inputs)
    return [2 * i["x"] for i in inputs]


@launch.batched(max_batch_size=4)
async def double_async(inputs: list[dict[str, Any]]) -> list[Any]:
    SEEN.append(list(inputs))
    ENTERED.set()
    if any(i.get("wait") for i in inputs):
        await asyncio.to_thread(GATE.wait, 10)
    return [2 * i["x"] for i in inputs]


@launch.batched
def raises(inputs: list[Any]) -> list[Any]:
    raise RuntimeError("the model broke")


@launch.batched
def one_short(inputs: list[Any]) -> list[Any]:
    SEEN.append(list(inputs))
    return [1] * (len(inputs) - 1)


@launch.batched
def slow(inputs: list[dict[str, Any]]) -> list[Any]:
    SEEN.append(list(inputs))
    ENTERED.set()
    end = time.monotonic() + 30
    while time.monotonic() < end:  # short steps: a given-up call stops between them
        time.sleep(0.005)
    return [0] * len(inputs)


@launch.batched
def cancels(inputs: list[dict[str, Any]]) -> list[Any]:
    """Raises the CancelledError of some future of its own, once; answers after that."""
    SEEN.append(list(inputs))
    if len(SEEN) == 1:
        raise asyncio.CancelledError()
    return [i["x"] for i in inputs]


@launch.batched
async def cancels_async(inputs: list[dict[str, Any]]) -> list[Any]:
    SEEN.append(list(inputs))
    if len(SEEN) == 1:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        never.cancel()
        await never
    return [i["x"] for i in inputs]


@launch.batched
def too_deep(inputs: list[dict[str, Any]]) -> list[Any]:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    return [deep if i["x"] == 1 else i["x"] for i in inputs]


@launch.batched
def generator_batch(inputs: list[Any]) -> Iterator[Any]:
    yield from inputs


def plain(x: int) -> int:
    return x


class Model:
    """A callable class whose __call__ is the batch function."""

    def __init__(self) -> None:
        self.factor = 3

    @launch.batched(max_batch_size=2)
    def __call__(self, inputs: list[dict[str, Any]]) -> list[Any]:
        SEEN.append(list(inputs))
        return [self.factor * i["x"] for i in inputs]


def load_predict_fn(model: dict[str, int]) -> Any:
    @launch.batched(max_batch_size=8)
    def predict(inputs: list[dict[str, Any]]) -> list[Any]:
        return [model["bias"] + i["x"] for i in inputs]

    return predict


@pytest.fixture(autouse=True)
def reset() -> Iterator[None]:
    SEEN.clear()
    GATE.clear()
    GATE2.clear()
    ENTERED.clear()
    yield
    GATE.set()  # nothing stays blocked past a failing test
    GATE2.set()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


def descriptor(
    storage: LocalStorage, predict: Any, form: str = FORM_PREDICT_FN_OR_CLS, model: Any = None
) -> BundleDescriptor:
    if form == FORM_WITH_MODEL:
        data, metadata = pickle_bundle(form, None, predict, model, None, None)
    else:
        data, metadata = pickle_bundle(form, predict, None, None, None, None)
    return BundleDescriptor(
        bundle_id="b1",
        name="batch-bundle",
        packaging_type="CLOUDPICKLE",
        form=form,
        location=storage.put_bytes("bundles/b1.pkl", data),
        metadata=metadata,
        python_version=current_python_version(),
    )


class Replica:
    """A LaunchReplica and a loop of the test's own to call it from (as Serve's would)."""

    def __init__(self, storage: LocalStorage, tmp_path: Path, predict: Any, **config: Any) -> None:
        cfg = RuntimeConfig(storage_url=storage.root_url, work_dir=str(tmp_path / "work"), **config)
        self.replica = LaunchReplica(descriptor(storage, predict).to_dict(), cfg.to_dict())
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def start(self, request: InferenceRequest, **kwargs: Any) -> Any:
        """A call in flight: a concurrent future of its answer."""
        return asyncio.run_coroutine_threadsafe(self.replica(request, **kwargs), self.loop)

    def many(self, requests: list[InferenceRequest], timeout_s: float | None = None) -> list[InferenceAnswer]:
        return asyncio.run_coroutine_threadsafe(self.replica.predict_many(requests, timeout_s), self.loop).result(10)

    def call(self, request: InferenceRequest, **kwargs: Any) -> InferenceAnswer:
        return self.start(request, **kwargs).result(10)

    def close(self) -> None:
        self.replica.__del__()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def make(storage: LocalStorage, tmp_path: Path) -> Iterator[Any]:
    made: list[Replica] = []

    def build(predict: Any, **config: Any) -> Replica:
        made.append(Replica(storage, tmp_path, predict, **config))
        return made[-1]

    yield build
    for replica in made:
        replica.close()


def while_blocked(replica: Replica, first: InferenceRequest) -> Any:
    """Starts `first` (which holds its batch at the gate) and returns once its batch runs."""
    ENTERED.clear()
    future = replica.start(first)
    assert ENTERED.wait(10)
    ENTERED.clear()
    return future


def settle_queue() -> None:
    """Lets requests started from another thread reach the batcher's queue."""
    time.sleep(0.2)


# ----- the mark, and what can be a batch function -----


def test_the_sdk_mark_and_bounds_are_the_replicas() -> None:
    assert sdk_batching.BATCH_ATTRIBUTE == batching.BATCH_ATTRIBUTE
    assert sdk_batching.MAX_BATCH_SIZE == batch_limits.MAX_BATCH_SIZE
    assert sdk_batching.MAX_BATCH_WAIT_MS == batch_limits.MAX_BATCH_WAIT_MS
    with pytest.raises(ValueError, match="max_batch_size"):
        launch.batched(max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        launch.batched(max_wait_ms=1001)


def test_the_mark_travels_in_a_pickle_by_value() -> None:
    @launch.batched(max_batch_size=5, max_wait_ms=3)
    def local(inputs: list[Any]) -> list[Any]:
        return inputs

    restored = cloudpickle.loads(cloudpickle.dumps(local))
    assert batching.batch_limits_of(restored) == batching.BatchLimits(5, 3)
    assert batching.batch_limits_of(restored, 7, None) == batching.BatchLimits(7, 3)
    assert batching.batch_limits_of(plain) is None


def test_endpoint_limits_on_a_plain_function_and_generators_do_not_load(storage: LocalStorage, tmp_path: Path) -> None:
    with pytest.raises(BundleLoadError, match="not a batch function"):
        Replica(storage, tmp_path, plain, max_batch_size=4)
    with pytest.raises(BundleLoadError, match="cannot be a generator"):
        Replica(storage, tmp_path, generator_batch)


def test_every_bundle_form_batches(make: Any, storage: LocalStorage, tmp_path: Path) -> None:
    cls = make(Model)  # the class is instantiated once; its __call__ is the batch function
    assert results(cls.many([args(x=1), args(x=2), args(x=3)])) == [3, 6, 9]
    assert [len(s) for s in SEEN] == [2, 1]

    cfg = RuntimeConfig(storage_url=storage.root_url, work_dir=str(tmp_path / "work"))
    with_model = LaunchReplica(
        descriptor(storage, load_predict_fn, FORM_WITH_MODEL, {"bias": 10}).to_dict(), cfg.to_dict()
    )
    try:
        assert with_model.runtime.batching == batching.BatchLimits(8, 0)
        assert with_model.runtime.predict(args(x=1)).result == "11"
    finally:
        with_model.__del__()


def test_a_zip_bundle_module_uses_the_same_decorator(storage: LocalStorage, tmp_path: Path) -> None:
    package = tmp_path / "src" / "batchmod"
    package.mkdir(parents=True)
    (package / "serve.py").write_text(
        "import launch\n"
        "\n"
        "def load_model():\n"
        "    return 100\n"
        "\n"
        "def load_predict_fn(model):\n"
        "    @launch.batched(max_batch_size=6, max_wait_ms=1)\n"
        "    def predict(inputs):\n"
        "        return [model + i['x'] for i in inputs]\n"
        "    return predict\n"
    )
    zipped = BundleDescriptor(
        bundle_id="zb1",
        name="zip-batch",
        packaging_type="ZIP",
        form="UNSPECIFIED",
        location=storage.put_bytes("bundles/zb1.zip", zip_directories([str(package)])),
        metadata={
            "load_predict_fn_module_path": "batchmod.serve.load_predict_fn",
            "load_model_fn_module_path": "batchmod.serve.load_model",
        },
    )
    cfg = RuntimeConfig(storage_url=storage.root_url, work_dir=str(tmp_path / "work"))
    replica = LaunchReplica(zipped.to_dict(), cfg.to_dict())
    try:
        assert replica.runtime.batching == batching.BatchLimits(6, 1)
        answers = asyncio.run(replica.predict_many([args(x=1), args(x=2)]))
        assert results(answers) == [101, 102]
    finally:
        replica.__del__()


# ----- how batches form -----


def test_an_idle_function_starts_at_once_and_arrivals_meanwhile_share_the_next_batch(make: Any) -> None:
    replica = make(double)
    assert results([replica.call(args(x=1))]) == [2]  # alone: a batch of one, no wait
    first = while_blocked(replica, args(x=1, wait=True))
    rest = [replica.start(args(x=x)) for x in (2, 3, 4, 5, 6)]
    settle_queue()
    GATE.set()
    assert results([first.result(10)] + [f.result(10) for f in rest]) == [2, 4, 6, 8, 10, 12]
    assert [len(s) for s in SEEN] == [1, 1, 4, 1]  # the max batch size caps the gathered five


def test_max_wait_gathers_a_fuller_batch(make: Any) -> None:
    replica = make(double, max_batch_wait_ms=1000)
    futures = [replica.start(args(x=x)) for x in range(3)]
    assert results([f.result(10) for f in futures]) == [0, 2, 4]
    assert [len(s) for s in SEEN] == [3]


def test_a_task_group_goes_in_as_one_batch_where_it_fits(make: Any) -> None:
    replica = make(double)
    assert results(replica.many([args(x=x) for x in range(6)])) == [0, 2, 4, 6, 8, 10]
    assert [len(s) for s in SEEN] == [4, 2]
    assert results(replica.many([args(x=1)], timeout_s=30)) == [2]


def test_async_batch_functions_batch_on_the_replica_loop(make: Any) -> None:
    replica = make(double_async)
    first = while_blocked(replica, args(x=1, wait=True))
    rest = [replica.start(args(x=x)) for x in (2, 3)]
    settle_queue()
    GATE.set()
    assert results([first.result(10)] + [f.result(10) for f in rest]) == [2, 4, 6]
    assert [len(s) for s in SEEN] == [1, 2]


# ----- deadlines and cancellation -----


def test_no_batch_waits_out_a_requests_deadline(make: Any) -> None:
    replica = make(double, max_batch_wait_ms=1000)
    answer = replica.call(args(x=4), patience_s=0.4)  # would wait 1 s for company without a deadline
    assert results([answer]) == [8]


def test_a_request_whose_deadline_passes_while_waiting_never_joins_a_batch(make: Any) -> None:
    replica = make(double)
    first = while_blocked(replica, args(x=1, wait=True))
    late = replica.start(args(x=2), patience_s=0.1)
    answer = late.result(10)
    assert not answer.succeeded and answer.traceback == DEADLINE_MESSAGE
    GATE.set()
    assert results([first.result(10)]) == [2]
    assert SEEN == [[{"x": 1, "wait": True}]]  # x=2 was never called


def test_a_cancelled_request_leaves_its_batch_without_failing_the_others(make: Any) -> None:
    replica = make(double)
    first = while_blocked(replica, args(x=1, wait=True))
    stays = replica.start(args(x=2, wait2=True))
    leaves = replica.start(args(x=3))
    settle_queue()
    GATE.set()
    assert results([first.result(10)]) == [2]
    assert ENTERED.wait(10)  # the batch [2, 3] runs, held at the second gate
    leaves.cancel()
    settle_queue()
    GATE2.set()
    assert results([stays.result(10)]) == [4]
    assert leaves.cancelled()
    assert [len(s) for s in SEEN] == [1, 2]


def test_a_batch_everyone_left_is_given_up(make: Any) -> None:
    replica = make(slow)
    gone = replica.start(args(x=1))
    assert ENTERED.wait(10)
    gone.cancel()
    # The pool's one thread is free again: the next request is served, by a fresh slow call that
    # this time runs past its task timeout.
    ENTERED.clear()
    answer = replica.call(args(x=2), timeout_s=0.3)
    assert not answer.succeeded and answer.traceback == timeout_message(0.3)
    assert len(SEEN) == 2


# ----- errors and results -----


def test_a_raise_fails_every_request_of_the_batch_with_the_traceback(make: Any) -> None:
    replica = make(raises)
    answers = replica.many([args(x=1), args(x=2)])
    assert all(not a.succeeded and "RuntimeError: the model broke" in a.traceback for a in answers)


@pytest.mark.parametrize("predict", [cancels, cancels_async], ids=["sync", "async"])
def test_a_cancelled_error_from_user_code_fails_its_batch_and_the_next_is_served(make: Any, predict: Any) -> None:
    replica = make(predict)
    answer = replica.call(args(x=1))
    assert not answer.succeeded and "CancelledError" in answer.traceback
    assert results([replica.call(args(x=2))]) == [2]


def test_a_wrong_number_of_results_fails_every_request(make: Any) -> None:
    replica = make(one_short)
    answers = replica.many([args(x=1), args(x=2), args(x=3)])
    assert all(not a.succeeded and "returned 2 results for 3 requests" in a.traceback for a in answers)


def test_a_bad_input_fails_only_itself_before_the_batch(make: Any, storage: LocalStorage) -> None:
    replica = make(double)
    missing = InferenceRequest(url=storage.root_url.rstrip("/") + "/results/nothing-here.bin")
    answers = replica.many([args(x=1), missing, InferenceRequest(args_json="[1]"), args(x=2)])
    assert [a.succeeded for a in answers] == [True, False, False, True]
    assert "no such object" in answers[1].traceback and "JSON object" in answers[2].traceback
    assert SEEN == [[{"x": 1}, {"x": 2}]]


def test_json_and_pickled_results_per_request(make: Any, storage: LocalStorage) -> None:
    replica = make(double)
    json_answer, pickled = replica.many([args(x=1), InferenceRequest(args_json='{"x": 5}', return_pickled=True)])
    assert json_answer.result == "2" and not json_answer.result_url
    assert cloudpickle.loads(storage.read_bytes(pickled.result_url)) == 10
    assert [len(s) for s in SEEN] == [2]


def test_a_stream_request_gets_its_one_result(make: Any) -> None:
    replica = make(double)

    async def read() -> list[InferenceAnswer]:
        return [a async for a in replica.replica.predict_stream(args(x=21))]

    assert results(asyncio.run_coroutine_threadsafe(read(), replica.loop).result(10)) == [42]


# ----- batch jobs -----


def test_a_chunk_goes_through_the_batch_function_in_slices(make: Any, storage: LocalStorage) -> None:
    replica = make(double)
    items = tuple(args(x=x) for x in range(5)) + (InferenceRequest(args_json="{"),) + (args(x=9),)
    chunk = ChunkRequest(items, "json", "batch/j/0")
    answer = asyncio.run_coroutine_threadsafe(replica.replica.run_chunk(chunk, 30), replica.loop).result(10)
    summary = json.loads(answer.result)
    assert summary["succeeded"] == 6 and summary["failed"] == 1
    outcomes = json.loads(storage.read_bytes(summary["location"]))
    assert [o.get("result") for o in outcomes] == [0, 2, 4, 6, 8, None, 18]
    assert [len(s) for s in SEEN] == [4, 2]  # slices of the max batch size; the bad input left out


def test_a_result_json_cannot_write_fails_only_its_input(make: Any, storage: LocalStorage) -> None:
    replica = make(too_deep)
    chunk = ChunkRequest(tuple(args(x=x) for x in range(3)), "json", "batch/j/2")
    answer = asyncio.run_coroutine_threadsafe(replica.replica.run_chunk(chunk, 30), replica.loop).result(30)
    outcomes = json.loads(storage.read_bytes(json.loads(answer.result)["location"]))
    assert outcomes[0] == {"result": 0} and outcomes[2] == {"result": 2}
    assert "RecursionError" in outcomes[1]["error"]


def test_a_raising_slice_fails_only_its_own_inputs(make: Any, storage: LocalStorage) -> None:
    replica = make(raises, max_batch_size=2)
    chunk = ChunkRequest(tuple(args(x=x) for x in range(3)), "json", "batch/j/1")
    answer = asyncio.run_coroutine_threadsafe(replica.replica.run_chunk(chunk, 30), replica.loop).result(10)
    outcomes = json.loads(storage.read_bytes(json.loads(answer.result)["location"]))
    assert len(outcomes) == 3 and all("the model broke" in o["error"] for o in outcomes)

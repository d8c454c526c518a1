"""Hostile batch-job inputs against a real server with its serving layer, on both backends (the CSV
file in local storage, and in the moto S3 server): each is answered INVALID_ARGUMENT naming the
field, creates nothing, and a 250 MiB file raises the server's peak memory by far less than its
size (the file is streamed and reading stops at the first fault)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from launch.v1 import batch_job_pb2 as bjpb
from launch.v1 import batch_job_pb2_grpc as bjgrpc

from tests.support import S3Server, ServerHandle

OWNER = "files"
MIB = 1 << 20
# A correctness bound, not a measurement: reading a 250 MiB file whole would take more than this.
PEAK_RISE_LIMIT = 200 * MIB


def vm_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {name} in /proc/{pid}/status")


def peak_rise(pid: int, call: Callable[[], None]) -> int:
    """How far above its resident size before the call the server's peak resident size went, in
    bytes: the peak (VmHWM) is reset to the current size first (clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = vm_kib(pid, "VmRSS")
    call()
    return (vm_kib(pid, "VmHWM") - before) * 1024


@pytest.fixture(scope="module")
def put(serving_server: ServerHandle, request: pytest.FixtureRequest) -> Iterator[Callable[[str, Path], str]]:
    """Places a local file in the server's storage (a directory, or the S3 bucket) and gives the
    location a client names, under a folder clients may name (not bundles/, batch/, results/)."""
    storage_url = serving_server.env.get("LAUNCH_STORAGE_URL", "")
    if storage_url.startswith("s3://"):
        s3: S3Server = request.getfixturevalue("s3_server")
        client = s3.client()
        prefix = storage_url.removeprefix(f"s3://{s3.bucket}/").rstrip("/")

        # Few parts in flight at once: the files here are hundreds of MiB and moto holds the
        # whole machine's test traffic besides.
        gentle = TransferConfig(max_concurrency=2)

        def put_s3(name: str, path: Path) -> str:
            try:
                client.upload_file(str(path), s3.bucket, f"{prefix}/inputs/{name}", Config=gentle)
            except S3UploadFailedError as err:
                raise AssertionError(f"moto refused the upload: {err}\n{s3.log_tail()}") from err
            return f"{storage_url.rstrip('/')}/inputs/{name}"

        yield put_s3
    else:
        folder = serving_server.data_dir / "storage" / "inputs"
        folder.mkdir(parents=True, exist_ok=True)

        def put_local(name: str, path: Path) -> str:
            target = folder / name
            path.replace(target)
            return target.as_uri()

        yield put_local


@pytest.fixture(scope="module")
def stub(serving_server: ServerHandle) -> Iterator[tuple[bjgrpc.BatchJobServiceStub, tuple]]:
    with serving_server.channel() as channel:
        yield bjgrpc.BatchJobServiceStub(channel), (("authorization", f"Bearer {serving_server.key_for(OWNER)}"),)


def create(stub: tuple[bjgrpc.BatchJobServiceStub, tuple], **inputs: object) -> grpc.RpcError:
    service, metadata = stub
    request = bjpb.CreateBatchJobRequest(
        bundle_name="no-such-bundle", serialization_format=bjpb.SERIALIZATION_FORMAT_JSON, **inputs
    )
    with pytest.raises(grpc.RpcError) as err:
        service.CreateBatchJob(request, metadata=metadata, timeout=120)
    return err.value


def field_of(error: grpc.RpcError) -> str:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(error)
    assert status is not None, error
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.metadata.get("field", "")
    return ""


def refused(stub: tuple, location: str, message: str) -> None:
    error = create(stub, input_location=location)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert field_of(error) == "input_location" and message in error.details(), error.details()


def write(tmp_path: Path, *parts: bytes | tuple[bytes, int]) -> Path:
    """A file from byte strings, or (block, count) pairs written block by block."""
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    with open(path, "wb") as f:
        for part in parts:
            if isinstance(part, tuple):
                for _ in range(part[1]):
                    f.write(part[0])
            else:
                f.write(part)
    return path


def test_a_250_mib_line_is_refused_with_bounded_memory(
    serving_server: ServerHandle,
    stub: tuple,
    put: Callable[[str, Path], str],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    location = put("one-line.csv", write(tmp_path, b"url\nhttp://", (b"a" * MIB, 250)))
    rise = peak_rise(serving_server.proc.pid, lambda: refused(stub, location, "a CSV row is over"))
    record_property("peak_rise_mib", rise // MIB)
    assert rise < PEAK_RISE_LIMIT, f"peak resident size rose by {rise // MIB} MiB"


def test_rows_past_the_cap_are_refused_without_reading_the_rest(
    serving_server: ServerHandle,
    stub: tuple,
    put: Callable[[str, Path], str],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    # 1,000,001 rows, then 200 MiB that would be refused as not UTF-8 had the reading gone on.
    rows = b"".join(b"http://h/%07d\n" % i for i in range(100_001))
    path = write(tmp_path, b"url\n", rows, (b"http://h/0000000\n" * 10_000, 90), b"\n" * 9000, (b"\xff" * MIB, 200))
    location = put("many-rows.csv", path)
    message = "holds more than 1000000 rows"
    rise = peak_rise(serving_server.proc.pid, lambda: refused(stub, location, message))
    record_property("peak_rise_mib", rise // MIB)
    assert rise < PEAK_RISE_LIMIT, f"peak resident size rose by {rise // MIB} MiB"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"url\nhttp://a/\x00b\n", "holds a NUL character"),
        (b"url\nhttp://a/\nhttp://\xff\xfe/\n", "is not UTF-8 text"),
        (b"link\nhttp://a/\n", "exactly one 'url' column"),
        (b"", "is empty"),
        (b'url\n"http://a/\n', "is not proper CSV"),
    ],
)
def test_a_file_that_is_not_a_url_csv_is_refused(
    stub: tuple, put: Callable[[str, Path], str], tmp_path: Path, data: bytes, message: str
) -> None:
    refused(stub, put(f"{uuid.uuid4().hex}.csv", write(tmp_path, data)), message)


def test_a_proper_file_passes_on_to_the_bundle_check(
    stub: tuple, put: Callable[[str, Path], str], tmp_path: Path
) -> None:
    location = put("fine.csv", write(tmp_path, b"\xef\xbb\xbfid,url\r\n1,http://a/\r\n\r\n2,http://b/\r\n"))
    assert create(stub, input_location=location).code() == grpc.StatusCode.NOT_FOUND


def test_inline_inputs_are_capped(stub: tuple) -> None:
    error = create(stub, urls=bjpb.UrlList(urls=["u"] * 1_000_001))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == "inputs"
    error = create(stub, args=bjpb.ArgsList(args_json=['{"x": 1}', "[" * 100_000]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == "args.args_json[1]"


def test_nothing_was_created(stub: tuple) -> None:
    service, metadata = stub
    assert not service.ListBatchJobs(bjpb.ListBatchJobsRequest(), metadata=metadata).jobs

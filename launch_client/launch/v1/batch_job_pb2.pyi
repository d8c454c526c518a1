import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchJobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_JOB_STATUS_UNSPECIFIED: _ClassVar[BatchJobStatus]
    BATCH_JOB_STATUS_PENDING: _ClassVar[BatchJobStatus]
    BATCH_JOB_STATUS_RUNNING: _ClassVar[BatchJobStatus]
    BATCH_JOB_STATUS_SUCCESS: _ClassVar[BatchJobStatus]
    BATCH_JOB_STATUS_FAILURE: _ClassVar[BatchJobStatus]
    BATCH_JOB_STATUS_CANCELLED: _ClassVar[BatchJobStatus]

class SerializationFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERIALIZATION_FORMAT_UNSPECIFIED: _ClassVar[SerializationFormat]
    SERIALIZATION_FORMAT_JSON: _ClassVar[SerializationFormat]
    SERIALIZATION_FORMAT_PICKLE: _ClassVar[SerializationFormat]
BATCH_JOB_STATUS_UNSPECIFIED: BatchJobStatus
BATCH_JOB_STATUS_PENDING: BatchJobStatus
BATCH_JOB_STATUS_RUNNING: BatchJobStatus
BATCH_JOB_STATUS_SUCCESS: BatchJobStatus
BATCH_JOB_STATUS_FAILURE: BatchJobStatus
BATCH_JOB_STATUS_CANCELLED: BatchJobStatus
SERIALIZATION_FORMAT_UNSPECIFIED: SerializationFormat
SERIALIZATION_FORMAT_JSON: SerializationFormat
SERIALIZATION_FORMAT_PICKLE: SerializationFormat

class BatchTaskOptions(_message.Message):
    __slots__ = ("cpus", "memory", "gpus", "gpu_type", "max_workers", "pyspark_partition_size", "pyspark_max_executors")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKERS_FIELD_NUMBER: _ClassVar[int]
    PYSPARK_PARTITION_SIZE_FIELD_NUMBER: _ClassVar[int]
    PYSPARK_MAX_EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    memory: str
    gpus: int
    gpu_type: str
    max_workers: int
    pyspark_partition_size: int
    pyspark_max_executors: int
    def __init__(self, cpus: _Optional[float] = ..., memory: _Optional[str] = ..., gpus: _Optional[int] = ..., gpu_type: _Optional[str] = ..., max_workers: _Optional[int] = ..., pyspark_partition_size: _Optional[int] = ..., pyspark_max_executors: _Optional[int] = ...) -> None: ...

class BatchJob(_message.Message):
    __slots__ = ("job_id", "bundle_name", "status", "status_reason", "serialization_format", "options", "labels", "result_url", "total_count", "succeeded_count", "failed_count", "create_time", "start_time", "end_time")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    SERIALIZATION_FORMAT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RESULT_URL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    bundle_name: str
    status: BatchJobStatus
    status_reason: str
    serialization_format: SerializationFormat
    options: BatchTaskOptions
    labels: _containers.ScalarMap[str, str]
    result_url: str
    total_count: int
    succeeded_count: int
    failed_count: int
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., bundle_name: _Optional[str] = ..., status: _Optional[_Union[BatchJobStatus, str]] = ..., status_reason: _Optional[str] = ..., serialization_format: _Optional[_Union[SerializationFormat, str]] = ..., options: _Optional[_Union[BatchTaskOptions, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., result_url: _Optional[str] = ..., total_count: _Optional[int] = ..., succeeded_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UrlList(_message.Message):
    __slots__ = ("urls",)
    URLS_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, urls: _Optional[_Iterable[str]] = ...) -> None: ...

class ArgsList(_message.Message):
    __slots__ = ("args_json",)
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    args_json: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, args_json: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateBatchJobRequest(_message.Message):
    __slots__ = ("request_id", "bundle_name", "urls", "args", "input_location", "serialization_format", "options", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_NAME_FIELD_NUMBER: _ClassVar[int]
    URLS_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    INPUT_LOCATION_FIELD_NUMBER: _ClassVar[int]
    SERIALIZATION_FORMAT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    bundle_name: str
    urls: UrlList
    args: ArgsList
    input_location: str
    serialization_format: SerializationFormat
    options: BatchTaskOptions
    labels: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., bundle_name: _Optional[str] = ..., urls: _Optional[_Union[UrlList, _Mapping]] = ..., args: _Optional[_Union[ArgsList, _Mapping]] = ..., input_location: _Optional[str] = ..., serialization_format: _Optional[_Union[SerializationFormat, str]] = ..., options: _Optional[_Union[BatchTaskOptions, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateBatchJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: BatchJob
    def __init__(self, job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class GetBatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetBatchJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: BatchJob
    def __init__(self, job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class CancelBatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelBatchJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: BatchJob
    def __init__(self, job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class ListBatchJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBatchJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[BatchJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[BatchJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EndpointType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_TYPE_UNSPECIFIED: _ClassVar[EndpointType]
    ENDPOINT_TYPE_SYNC: _ClassVar[EndpointType]
    ENDPOINT_TYPE_ASYNC: _ClassVar[EndpointType]
    ENDPOINT_TYPE_STREAMING: _ClassVar[EndpointType]

class EndpointStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_STATUS_UNSPECIFIED: _ClassVar[EndpointStatus]
    ENDPOINT_STATUS_UPDATE_PENDING: _ClassVar[EndpointStatus]
    ENDPOINT_STATUS_UPDATE_IN_PROGRESS: _ClassVar[EndpointStatus]
    ENDPOINT_STATUS_READY: _ClassVar[EndpointStatus]
    ENDPOINT_STATUS_UPDATE_FAILED: _ClassVar[EndpointStatus]
    ENDPOINT_STATUS_DELETE_IN_PROGRESS: _ClassVar[EndpointStatus]

class LogStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_STREAM_UNSPECIFIED: _ClassVar[LogStream]
    LOG_STREAM_STDOUT: _ClassVar[LogStream]
    LOG_STREAM_STDERR: _ClassVar[LogStream]
    LOG_STREAM_LOGGING: _ClassVar[LogStream]
    LOG_STREAM_TRACEBACK: _ClassVar[LogStream]
ENDPOINT_TYPE_UNSPECIFIED: EndpointType
ENDPOINT_TYPE_SYNC: EndpointType
ENDPOINT_TYPE_ASYNC: EndpointType
ENDPOINT_TYPE_STREAMING: EndpointType
ENDPOINT_STATUS_UNSPECIFIED: EndpointStatus
ENDPOINT_STATUS_UPDATE_PENDING: EndpointStatus
ENDPOINT_STATUS_UPDATE_IN_PROGRESS: EndpointStatus
ENDPOINT_STATUS_READY: EndpointStatus
ENDPOINT_STATUS_UPDATE_FAILED: EndpointStatus
ENDPOINT_STATUS_DELETE_IN_PROGRESS: EndpointStatus
LOG_STREAM_UNSPECIFIED: LogStream
LOG_STREAM_STDOUT: LogStream
LOG_STREAM_STDERR: LogStream
LOG_STREAM_LOGGING: LogStream
LOG_STREAM_TRACEBACK: LogStream

class ResourceSettings(_message.Message):
    __slots__ = ("cpus", "memory", "gpus", "gpu_type", "storage")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    GPU_TYPE_FIELD_NUMBER: _ClassVar[int]
    STORAGE_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    memory: str
    gpus: int
    gpu_type: str
    storage: str
    def __init__(self, cpus: _Optional[float] = ..., memory: _Optional[str] = ..., gpus: _Optional[int] = ..., gpu_type: _Optional[str] = ..., storage: _Optional[str] = ...) -> None: ...

class WorkerSettings(_message.Message):
    __slots__ = ("min_workers", "max_workers", "per_worker", "available_workers", "unavailable_workers")
    MIN_WORKERS_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKERS_FIELD_NUMBER: _ClassVar[int]
    PER_WORKER_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_WORKERS_FIELD_NUMBER: _ClassVar[int]
    UNAVAILABLE_WORKERS_FIELD_NUMBER: _ClassVar[int]
    min_workers: int
    max_workers: int
    per_worker: int
    available_workers: int
    unavailable_workers: int
    def __init__(self, min_workers: _Optional[int] = ..., max_workers: _Optional[int] = ..., per_worker: _Optional[int] = ..., available_workers: _Optional[int] = ..., unavailable_workers: _Optional[int] = ...) -> None: ...

class BatchSettings(_message.Message):
    __slots__ = ("max_batch_size", "max_wait_ms")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_wait_ms: int
    def __init__(self, max_batch_size: _Optional[int] = ..., max_wait_ms: _Optional[int] = ...) -> None: ...

class ModelEndpoint(_message.Message):
    __slots__ = ("endpoint_id", "name", "bundle_name", "endpoint_type", "status", "status_reason", "resources", "workers", "post_inference_hooks", "default_callback_url", "labels", "task_expiry_seconds", "max_queue_size", "create_time", "update_time", "generation", "task_timeout_seconds", "batching")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    POST_INFERENCE_HOOKS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TASK_EXPIRY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    TASK_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    name: str
    bundle_name: str
    endpoint_type: EndpointType
    status: EndpointStatus
    status_reason: str
    resources: ResourceSettings
    workers: WorkerSettings
    post_inference_hooks: _containers.RepeatedScalarFieldContainer[str]
    default_callback_url: str
    labels: _containers.ScalarMap[str, str]
    task_expiry_seconds: int
    max_queue_size: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    generation: int
    task_timeout_seconds: int
    batching: BatchSettings
    def __init__(self, endpoint_id: _Optional[str] = ..., name: _Optional[str] = ..., bundle_name: _Optional[str] = ..., endpoint_type: _Optional[_Union[EndpointType, str]] = ..., status: _Optional[_Union[EndpointStatus, str]] = ..., status_reason: _Optional[str] = ..., resources: _Optional[_Union[ResourceSettings, _Mapping]] = ..., workers: _Optional[_Union[WorkerSettings, _Mapping]] = ..., post_inference_hooks: _Optional[_Iterable[str]] = ..., default_callback_url: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., task_expiry_seconds: _Optional[int] = ..., max_queue_size: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., generation: _Optional[int] = ..., task_timeout_seconds: _Optional[int] = ..., batching: _Optional[_Union[BatchSettings, _Mapping]] = ...) -> None: ...

class CreateModelEndpointRequest(_message.Message):
    __slots__ = ("request_id", "endpoint")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    endpoint: ModelEndpoint
    def __init__(self, request_id: _Optional[str] = ..., endpoint: _Optional[_Union[ModelEndpoint, _Mapping]] = ...) -> None: ...

class CreateModelEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: ModelEndpoint
    def __init__(self, endpoint: _Optional[_Union[ModelEndpoint, _Mapping]] = ...) -> None: ...

class GetModelEndpointRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: ModelEndpoint
    def __init__(self, endpoint: _Optional[_Union[ModelEndpoint, _Mapping]] = ...) -> None: ...

class ListModelEndpointsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelEndpointsResponse(_message.Message):
    __slots__ = ("endpoints", "next_page_token")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[ModelEndpoint]
    next_page_token: str
    def __init__(self, endpoints: _Optional[_Iterable[_Union[ModelEndpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateModelEndpointRequest(_message.Message):
    __slots__ = ("endpoint", "update_mask")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    endpoint: ModelEndpoint
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, endpoint: _Optional[_Union[ModelEndpoint, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateModelEndpointResponse(_message.Message):
    __slots__ = ("endpoint",)
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    endpoint: ModelEndpoint
    def __init__(self, endpoint: _Optional[_Union[ModelEndpoint, _Mapping]] = ...) -> None: ...

class DeleteModelEndpointRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteModelEndpointResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class ReadModelEndpointCreationLogsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class EndpointEvent(_message.Message):
    __slots__ = ("time", "status", "message")
    TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    status: EndpointStatus
    message: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[EndpointStatus, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ReadModelEndpointCreationLogsResponse(_message.Message):
    __slots__ = ("events", "logs")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[EndpointEvent]
    logs: str
    def __init__(self, events: _Optional[_Iterable[_Union[EndpointEvent, _Mapping]]] = ..., logs: _Optional[str] = ...) -> None: ...

class StreamModelEndpointLogsRequest(_message.Message):
    __slots__ = ("name", "since_seconds", "follow")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SINCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    since_seconds: float
    follow: bool
    def __init__(self, name: _Optional[str] = ..., since_seconds: _Optional[float] = ..., follow: _Optional[bool] = ...) -> None: ...

class EndpointLogLine(_message.Message):
    __slots__ = ("time", "replica", "stream", "text")
    TIME_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    replica: str
    stream: LogStream
    text: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replica: _Optional[str] = ..., stream: _Optional[_Union[LogStream, str]] = ..., text: _Optional[str] = ...) -> None: ...

class StreamModelEndpointLogsResponse(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[EndpointLogLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[EndpointLogLine, _Mapping]]] = ...) -> None: ...

class GetModelEndpointStatsRequest(_message.Message):
    __slots__ = ("names", "window_seconds")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    window_seconds: float
    def __init__(self, names: _Optional[_Iterable[str]] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class EndpointStats(_message.Message):
    __slots__ = ("name", "endpoint_type", "status", "requests_per_second", "errors_per_second", "p50_seconds", "p99_seconds", "in_flight", "tasks_queued", "oldest_queued_seconds", "workers_running", "workers_starting", "workers_desired", "min_workers", "max_workers", "requests_total", "failures_total", "window_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ERRORS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    P50_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P99_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    TASKS_QUEUED_FIELD_NUMBER: _ClassVar[int]
    OLDEST_QUEUED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    WORKERS_STARTING_FIELD_NUMBER: _ClassVar[int]
    WORKERS_DESIRED_FIELD_NUMBER: _ClassVar[int]
    MIN_WORKERS_FIELD_NUMBER: _ClassVar[int]
    MAX_WORKERS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FAILURES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    endpoint_type: EndpointType
    status: EndpointStatus
    requests_per_second: float
    errors_per_second: float
    p50_seconds: float
    p99_seconds: float
    in_flight: int
    tasks_queued: int
    oldest_queued_seconds: float
    workers_running: int
    workers_starting: int
    workers_desired: int
    min_workers: int
    max_workers: int
    requests_total: int
    failures_total: int
    window_seconds: float
    def __init__(self, name: _Optional[str] = ..., endpoint_type: _Optional[_Union[EndpointType, str]] = ..., status: _Optional[_Union[EndpointStatus, str]] = ..., requests_per_second: _Optional[float] = ..., errors_per_second: _Optional[float] = ..., p50_seconds: _Optional[float] = ..., p99_seconds: _Optional[float] = ..., in_flight: _Optional[int] = ..., tasks_queued: _Optional[int] = ..., oldest_queued_seconds: _Optional[float] = ..., workers_running: _Optional[int] = ..., workers_starting: _Optional[int] = ..., workers_desired: _Optional[int] = ..., min_workers: _Optional[int] = ..., max_workers: _Optional[int] = ..., requests_total: _Optional[int] = ..., failures_total: _Optional[int] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class GetModelEndpointStatsResponse(_message.Message):
    __slots__ = ("endpoints", "window_seconds")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointStats]
    window_seconds: float
    def __init__(self, endpoints: _Optional[_Iterable[_Union[EndpointStats, _Mapping]]] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class GetModelEndpointRouteRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelEndpointRouteResponse(_message.Message):
    __slots__ = ("replica_addresses", "route_token", "route_token_expire_time", "refresh_after_seconds", "replica_ca_pem", "replica_server_name")
    REPLICA_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    ROUTE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROUTE_TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REFRESH_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_CA_PEM_FIELD_NUMBER: _ClassVar[int]
    REPLICA_SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    replica_addresses: _containers.RepeatedScalarFieldContainer[str]
    route_token: str
    route_token_expire_time: _timestamp_pb2.Timestamp
    refresh_after_seconds: float
    replica_ca_pem: str
    replica_server_name: str
    def __init__(self, replica_addresses: _Optional[_Iterable[str]] = ..., route_token: _Optional[str] = ..., route_token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refresh_after_seconds: _Optional[float] = ..., replica_ca_pem: _Optional[str] = ..., replica_server_name: _Optional[str] = ...) -> None: ...

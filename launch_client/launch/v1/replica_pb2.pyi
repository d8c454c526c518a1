from launch.v1 import inference_pb2 as _inference_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunTasksRequest(_message.Message):
    __slots__ = ("tag", "input", "timeout_seconds", "cancel")
    TAG_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    tag: int
    input: _inference_pb2.RequestInput
    timeout_seconds: float
    cancel: bool
    def __init__(self, tag: _Optional[int] = ..., input: _Optional[_Union[_inference_pb2.RequestInput, _Mapping]] = ..., timeout_seconds: _Optional[float] = ..., cancel: _Optional[bool] = ...) -> None: ...

class RunTasksResponse(_message.Message):
    __slots__ = ("tag", "result", "refused")
    TAG_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    tag: int
    result: _inference_pb2.InferenceResult
    refused: str
    def __init__(self, tag: _Optional[int] = ..., result: _Optional[_Union[_inference_pb2.InferenceResult, _Mapping]] = ..., refused: _Optional[str] = ...) -> None: ...

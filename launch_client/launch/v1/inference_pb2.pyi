from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResultState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESULT_STATE_UNSPECIFIED: _ClassVar[ResultState]
    RESULT_STATE_PENDING: _ClassVar[ResultState]
    RESULT_STATE_STARTED: _ClassVar[ResultState]
    RESULT_STATE_SUCCESS: _ClassVar[ResultState]
    RESULT_STATE_FAILURE: _ClassVar[ResultState]
    RESULT_STATE_CANCELLED: _ClassVar[ResultState]
RESULT_STATE_UNSPECIFIED: ResultState
RESULT_STATE_PENDING: ResultState
RESULT_STATE_STARTED: ResultState
RESULT_STATE_SUCCESS: ResultState
RESULT_STATE_FAILURE: ResultState
RESULT_STATE_CANCELLED: ResultState

class RequestInput(_message.Message):
    __slots__ = ("url", "args_json", "return_pickled")
    URL_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    RETURN_PICKLED_FIELD_NUMBER: _ClassVar[int]
    url: str
    args_json: str
    return_pickled: bool
    def __init__(self, url: _Optional[str] = ..., args_json: _Optional[str] = ..., return_pickled: _Optional[bool] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("endpoint_name", "input")
    ENDPOINT_NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    endpoint_name: str
    input: RequestInput
    def __init__(self, endpoint_name: _Optional[str] = ..., input: _Optional[_Union[RequestInput, _Mapping]] = ...) -> None: ...

class InferenceResult(_message.Message):
    __slots__ = ("state", "result", "result_url", "traceback")
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RESULT_URL_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    state: ResultState
    result: str
    result_url: str
    traceback: str
    def __init__(self, state: _Optional[_Union[ResultState, str]] = ..., result: _Optional[str] = ..., result_url: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: InferenceResult
    def __init__(self, result: _Optional[_Union[InferenceResult, _Mapping]] = ...) -> None: ...

class PredictStreamRequest(_message.Message):
    __slots__ = ("endpoint_name", "input")
    ENDPOINT_NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    endpoint_name: str
    input: RequestInput
    def __init__(self, endpoint_name: _Optional[str] = ..., input: _Optional[_Union[RequestInput, _Mapping]] = ...) -> None: ...

class PredictStreamResponse(_message.Message):
    __slots__ = ("result", "more")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    result: InferenceResult
    more: _containers.RepeatedCompositeFieldContainer[InferenceResult]
    def __init__(self, result: _Optional[_Union[InferenceResult, _Mapping]] = ..., more: _Optional[_Iterable[_Union[InferenceResult, _Mapping]]] = ...) -> None: ...

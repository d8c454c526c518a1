import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PackagingType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKAGING_TYPE_UNSPECIFIED: _ClassVar[PackagingType]
    PACKAGING_TYPE_CLOUDPICKLE: _ClassVar[PackagingType]
    PACKAGING_TYPE_ZIP: _ClassVar[PackagingType]

class BundleForm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUNDLE_FORM_UNSPECIFIED: _ClassVar[BundleForm]
    BUNDLE_FORM_PREDICT_FN_OR_CLS: _ClassVar[BundleForm]
    BUNDLE_FORM_LOAD_PREDICT_FN_WITH_MODEL: _ClassVar[BundleForm]
    BUNDLE_FORM_LOAD_PREDICT_FN_WITH_LOAD_MODEL_FN: _ClassVar[BundleForm]
PACKAGING_TYPE_UNSPECIFIED: PackagingType
PACKAGING_TYPE_CLOUDPICKLE: PackagingType
PACKAGING_TYPE_ZIP: PackagingType
BUNDLE_FORM_UNSPECIFIED: BundleForm
BUNDLE_FORM_PREDICT_FN_OR_CLS: BundleForm
BUNDLE_FORM_LOAD_PREDICT_FN_WITH_MODEL: BundleForm
BUNDLE_FORM_LOAD_PREDICT_FN_WITH_LOAD_MODEL_FN: BundleForm

class ModelBundleSpec(_message.Message):
    __slots__ = ("name", "packaging_type", "form", "requirements", "env_params", "metadata", "app_config_json", "python_version", "location")
    class EnvParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PACKAGING_TYPE_FIELD_NUMBER: _ClassVar[int]
    FORM_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    ENV_PARAMS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    APP_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    packaging_type: PackagingType
    form: BundleForm
    requirements: _containers.RepeatedScalarFieldContainer[str]
    env_params: _containers.ScalarMap[str, str]
    metadata: _containers.ScalarMap[str, str]
    app_config_json: str
    python_version: str
    location: str
    def __init__(self, name: _Optional[str] = ..., packaging_type: _Optional[_Union[PackagingType, str]] = ..., form: _Optional[_Union[BundleForm, str]] = ..., requirements: _Optional[_Iterable[str]] = ..., env_params: _Optional[_Mapping[str, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., app_config_json: _Optional[str] = ..., python_version: _Optional[str] = ..., location: _Optional[str] = ...) -> None: ...

class ModelBundle(_message.Message):
    __slots__ = ("bundle_id", "name", "packaging_type", "form", "requirements", "env_params", "metadata", "app_config_json", "python_version", "location", "size_bytes", "sha256", "create_time")
    class EnvParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PACKAGING_TYPE_FIELD_NUMBER: _ClassVar[int]
    FORM_FIELD_NUMBER: _ClassVar[int]
    REQUIREMENTS_FIELD_NUMBER: _ClassVar[int]
    ENV_PARAMS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    APP_CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    bundle_id: str
    name: str
    packaging_type: PackagingType
    form: BundleForm
    requirements: _containers.RepeatedScalarFieldContainer[str]
    env_params: _containers.ScalarMap[str, str]
    metadata: _containers.ScalarMap[str, str]
    app_config_json: str
    python_version: str
    location: str
    size_bytes: int
    sha256: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, bundle_id: _Optional[str] = ..., name: _Optional[str] = ..., packaging_type: _Optional[_Union[PackagingType, str]] = ..., form: _Optional[_Union[BundleForm, str]] = ..., requirements: _Optional[_Iterable[str]] = ..., env_params: _Optional[_Mapping[str, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., app_config_json: _Optional[str] = ..., python_version: _Optional[str] = ..., location: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UploadModelBundleRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadModelBundleHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadModelBundleHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadModelBundleHeader(_message.Message):
    __slots__ = ("request_id", "bundle", "size_bytes", "sha256")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    bundle: ModelBundleSpec
    size_bytes: int
    sha256: str
    def __init__(self, request_id: _Optional[str] = ..., bundle: _Optional[_Union[ModelBundleSpec, _Mapping]] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class UploadModelBundleResponse(_message.Message):
    __slots__ = ("model_bundle",)
    MODEL_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    model_bundle: ModelBundle
    def __init__(self, model_bundle: _Optional[_Union[ModelBundle, _Mapping]] = ...) -> None: ...

class CreateModelBundleRequest(_message.Message):
    __slots__ = ("request_id", "bundle")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    bundle: ModelBundleSpec
    def __init__(self, request_id: _Optional[str] = ..., bundle: _Optional[_Union[ModelBundleSpec, _Mapping]] = ...) -> None: ...

class CreateModelBundleResponse(_message.Message):
    __slots__ = ("model_bundle",)
    MODEL_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    model_bundle: ModelBundle
    def __init__(self, model_bundle: _Optional[_Union[ModelBundle, _Mapping]] = ...) -> None: ...

class GetModelBundleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetModelBundleResponse(_message.Message):
    __slots__ = ("model_bundle",)
    MODEL_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    model_bundle: ModelBundle
    def __init__(self, model_bundle: _Optional[_Union[ModelBundle, _Mapping]] = ...) -> None: ...

class ListModelBundlesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelBundlesResponse(_message.Message):
    __slots__ = ("model_bundles", "next_page_token")
    MODEL_BUNDLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    model_bundles: _containers.RepeatedCompositeFieldContainer[ModelBundle]
    next_page_token: str
    def __init__(self, model_bundles: _Optional[_Iterable[_Union[ModelBundle, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteModelBundleRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteModelBundleResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

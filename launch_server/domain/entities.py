"""Plain entities the domain services pass around; the store maps them to tables and the api
layer to protobuf messages."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class PackagingType(str, Enum):
    """How a bundle's artifact is laid out (names match the proto enum without its prefix)."""

    CLOUDPICKLE = "CLOUDPICKLE"
    ZIP = "ZIP"


class BundleForm(str, Enum):
    """Which documented cloudpickle layout a bundle uses; UNSPECIFIED for zip bundles."""

    UNSPECIFIED = "UNSPECIFIED"
    PREDICT_FN_OR_CLS = "PREDICT_FN_OR_CLS"
    LOAD_PREDICT_FN_WITH_MODEL = "LOAD_PREDICT_FN_WITH_MODEL"
    LOAD_PREDICT_FN_WITH_LOAD_MODEL_FN = "LOAD_PREDICT_FN_WITH_LOAD_MODEL_FN"


@dataclass(frozen=True)
class BundleSpec:
    """What a client declares about a bundle."""

    name: str
    packaging_type: PackagingType
    form: BundleForm = BundleForm.UNSPECIFIED
    requirements: tuple[str, ...] = ()
    env_params: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    app_config_json: str = ""
    python_version: str = ""
    location: str = ""


@dataclass(frozen=True)
class Bundle:
    """A registered bundle."""

    bundle_id: str
    owner: str
    name: str
    packaging_type: PackagingType
    form: BundleForm
    requirements: tuple[str, ...]
    env_params: dict[str, str]
    metadata: dict[str, str]
    app_config_json: str
    python_version: str
    location: str
    size_bytes: int
    sha256: str
    managed_artifact: bool
    created_at: datetime
    request_id: str | None = None

    def replace(self, **changes: object) -> Bundle:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key: only the hash of its secret is kept."""

    key_id: str
    owner: str
    secret_hash: str
    description: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Page:
    """One page of a listing and the opaque token for the next."""

    items: list
    next_page_token: str = ""

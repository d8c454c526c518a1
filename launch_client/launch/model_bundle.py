"""ModelBundle: what the SDK returns for a registered bundle (the documented attributes plus the
Python version it was pickled with)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from launch.v1 import model_bundle_pb2 as bpb


@dataclass
class ModelBundle:
    name: str
    bundle_id: str | None = None
    env_params: dict[str, str] = field(default_factory=dict)
    location: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    packaging_type: str | None = None
    requirements: list[str] = field(default_factory=list)
    app_config: dict[str, Any] | None = None
    python_version: str | None = None
    size_bytes: int = 0
    sha256: str = ""
    created_at: datetime | None = None

    @classmethod
    def from_proto(cls, message: bpb.ModelBundle) -> ModelBundle:
        return cls(
            name=message.name,
            bundle_id=message.bundle_id,
            env_params=dict(message.env_params),
            location=message.location,
            metadata=dict(message.metadata),
            packaging_type=bpb.PackagingType.Name(message.packaging_type).removeprefix("PACKAGING_TYPE_").lower(),
            requirements=list(message.requirements),
            app_config=json.loads(message.app_config_json) if message.app_config_json else None,
            python_version=message.python_version or None,
            size_bytes=message.size_bytes,
            sha256=message.sha256,
            created_at=message.create_time.ToDatetime() if message.HasField("create_time") else None,
        )

    def __str__(self) -> str:
        return f"ModelBundle(bundle_name={self.name})"


def bundle_name_of(model_bundle: ModelBundle | str) -> str:
    """The name the server knows a bundle by, from either form the SDK's methods accept."""
    if isinstance(model_bundle, ModelBundle):
        return model_bundle.name
    if isinstance(model_bundle, str):
        return model_bundle
    raise TypeError("model_bundle should be type ModelBundle or str")

"""Conversions between protobuf messages and domain entities, in one place."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from launch.v1 import model_bundle_pb2 as bpb

from launch_server.domain.entities import Bundle, BundleForm, BundleSpec, PackagingType
from launch_server.domain.errors import InvalidArgument


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def packaging_from_proto(value: int, field: str) -> PackagingType:
    name = bpb.PackagingType.Name(value) if value in bpb.PackagingType.values() else ""
    if name in ("", "PACKAGING_TYPE_UNSPECIFIED"):
        raise InvalidArgument(field, "must be PACKAGING_TYPE_CLOUDPICKLE or PACKAGING_TYPE_ZIP")
    return PackagingType(name.removeprefix("PACKAGING_TYPE_"))


def form_from_proto(value: int, field: str) -> BundleForm:
    if value not in bpb.BundleForm.values():
        raise InvalidArgument(field, f"unknown bundle form {value}")
    return BundleForm(bpb.BundleForm.Name(value).removeprefix("BUNDLE_FORM_"))


def bundle_spec_from_proto(spec: bpb.ModelBundleSpec, prefix: str) -> BundleSpec:
    return BundleSpec(
        name=spec.name,
        packaging_type=packaging_from_proto(spec.packaging_type, f"{prefix}.packaging_type"),
        form=form_from_proto(spec.form, f"{prefix}.form"),
        requirements=tuple(spec.requirements),
        env_params=dict(spec.env_params),
        metadata=dict(spec.metadata),
        app_config_json=spec.app_config_json,
        python_version=spec.python_version,
        location=spec.location,
    )


def bundle_to_proto(bundle: Bundle) -> bpb.ModelBundle:
    return bpb.ModelBundle(
        bundle_id=bundle.bundle_id,
        name=bundle.name,
        packaging_type=bpb.PackagingType.Value(f"PACKAGING_TYPE_{bundle.packaging_type.value}"),
        form=bpb.BundleForm.Value(f"BUNDLE_FORM_{bundle.form.value}"),
        requirements=list(bundle.requirements),
        env_params=bundle.env_params,
        metadata=bundle.metadata,
        app_config_json=bundle.app_config_json,
        python_version=bundle.python_version,
        location=bundle.location,
        size_bytes=bundle.size_bytes,
        sha256=bundle.sha256,
        create_time=timestamp(bundle.created_at),
    )

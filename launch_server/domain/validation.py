"""Validation of names, env_params, requirements and sizes: the rules the contract documents.
Every failure raises InvalidArgument naming the field, before anything is written."""

from __future__ import annotations

import json
import re

from .entities import BundleForm, BundleSpec, PackagingType
from .errors import InvalidArgument

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
PYTHON_VERSION_RE = re.compile(r"^3\.\d{1,2}$")
MODULE_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
MAX_REQUIREMENTS = 500
MAX_REQUIREMENT_LEN = 500
MAX_APP_CONFIG_BYTES = 1 << 20
MAX_REQUEST_ID_LEN = 128
FRAMEWORK_TYPES = {"pytorch", "tensorflow", "custom_base_image"}


def validate_name(field: str, name: str) -> str:
    """Names are DNS-label-like so they are safe in Ray application names, paths and URLs."""
    if not name:
        raise InvalidArgument(field, "must not be empty")
    if len(name) > 63:
        raise InvalidArgument(field, f"must be at most 63 characters, got {len(name)}")
    if not NAME_RE.match(name):
        raise InvalidArgument(
            field,
            "must start with a lowercase letter or digit and contain only lowercase letters, "
            f"digits, '-', '_' and '.', got {name!r}",
        )
    return name


def validate_request_id(field: str, request_id: str) -> str | None:
    if not request_id:
        return None
    if len(request_id) > MAX_REQUEST_ID_LEN:
        raise InvalidArgument(field, f"must be at most {MAX_REQUEST_ID_LEN} characters")
    return request_id


def validate_env_params(field: str, env_params: dict[str, str]) -> None:
    """Launch's documented rules: framework_type is required; pytorch needs pytorch_image_tag and
    tensorflow needs tensorflow_version."""
    framework = env_params.get("framework_type", "")
    if not framework:
        raise InvalidArgument(f"{field}.framework_type", "is required")
    if framework not in FRAMEWORK_TYPES:
        raise InvalidArgument(f"{field}.framework_type", f"must be one of {sorted(FRAMEWORK_TYPES)}, got {framework!r}")
    if framework == "pytorch" and not env_params.get("pytorch_image_tag"):
        raise InvalidArgument(f"{field}.pytorch_image_tag", "is required when framework_type is pytorch")
    if framework == "tensorflow" and not env_params.get("tensorflow_version"):
        raise InvalidArgument(f"{field}.tensorflow_version", "is required when framework_type is tensorflow")


def validate_requirements(field: str, requirements: tuple[str, ...]) -> None:
    if len(requirements) > MAX_REQUIREMENTS:
        raise InvalidArgument(field, f"at most {MAX_REQUIREMENTS} lines, got {len(requirements)}")
    for index, line in enumerate(requirements):
        if not line.strip():
            raise InvalidArgument(f"{field}[{index}]", "must not be blank")
        if len(line) > MAX_REQUIREMENT_LEN:
            raise InvalidArgument(f"{field}[{index}]", f"must be at most {MAX_REQUIREMENT_LEN} characters")
        if "\n" in line or line.lstrip().startswith("-"):
            raise InvalidArgument(f"{field}[{index}]", "must be one requirement, not a pip option")


def validate_app_config(field: str, app_config_json: str) -> None:
    if not app_config_json:
        return
    if len(app_config_json.encode()) > MAX_APP_CONFIG_BYTES:
        raise InvalidArgument(field, "must be at most 1 MiB")
    try:
        value = json.loads(app_config_json)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(field, f"is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be a JSON object")


def validate_bundle_spec(spec: BundleSpec, prefix: str = "bundle") -> None:
    """Checks every declared field of a bundle; the order matches the proto's field order so the
    first error a client sees is the first field it got wrong."""
    validate_name(f"{prefix}.name", spec.name)
    if spec.packaging_type not in (PackagingType.CLOUDPICKLE, PackagingType.ZIP):
        raise InvalidArgument(f"{prefix}.packaging_type", "must be CLOUDPICKLE or ZIP")
    if spec.packaging_type is PackagingType.CLOUDPICKLE:
        if spec.form is BundleForm.UNSPECIFIED:
            raise InvalidArgument(f"{prefix}.form", "is required for cloudpickle bundles")
        if not PYTHON_VERSION_RE.match(spec.python_version):
            raise InvalidArgument(
                f"{prefix}.python_version",
                f"must be 'major.minor' such as '3.11', got {spec.python_version!r}",
            )
    else:
        if spec.form is not BundleForm.UNSPECIFIED:
            raise InvalidArgument(f"{prefix}.form", "must be unset for zip bundles")
        for key in ("load_predict_fn_module_path", "load_model_fn_module_path"):
            path = spec.metadata.get(key, "")
            if not MODULE_PATH_RE.match(path):
                raise InvalidArgument(
                    f"{prefix}.metadata.{key}",
                    f"must be a dotted module path such as 'my_module.my_file.f', got {path!r}",
                )
        if spec.python_version and not PYTHON_VERSION_RE.match(spec.python_version):
            raise InvalidArgument(f"{prefix}.python_version", "must be 'major.minor' such as '3.11'")
    validate_requirements(f"{prefix}.requirements", spec.requirements)
    validate_env_params(f"{prefix}.env_params", spec.env_params)
    validate_app_config(f"{prefix}.app_config_json", spec.app_config_json)


def validate_sha256(field: str, value: str) -> None:
    if not SHA256_RE.match(value):
        raise InvalidArgument(field, "must be 64 lowercase hex characters")


def validate_page_size(field: str, page_size: int) -> int:
    if page_size < 0 or page_size > 1000:
        raise InvalidArgument(field, f"must be between 0 and 1000, got {page_size}")
    return page_size or 100

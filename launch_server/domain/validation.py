"""Validation of names, env_params, requirements and sizes: the rules the contract documents.
Every failure raises InvalidArgument naming the field, before anything is written."""

from __future__ import annotations

import re

from launch_server.domain.entities import BundleForm, BundleSpec, PackagingType
from launch_server.domain.errors import InvalidArgument
from launch_server.domain.json_input import MAX_APP_CONFIG_BYTES, parse_json_object

# Patterns are applied with fullmatch: `$` would also match before a trailing newline.
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
PYTHON_VERSION_RE = re.compile(r"3\.\d{1,2}")
MODULE_PATH_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){1,31}")
MAX_REQUIREMENTS = 500
MAX_REQUIREMENT_LEN = 500
MAX_REQUEST_ID_LEN = 128
MAX_URL_LEN = 2048
MAX_PAGE_SIZE = 1000
MAX_LABELS = 64
MAX_LABEL_KEY_LEN = 63
MAX_LABEL_VALUE_LEN = 63
MAX_ENV_PARAMS = 64
MAX_ENV_PARAM_KEY_LEN = 63
MAX_ENV_PARAM_VALUE_LEN = 256
MAX_METADATA = 64
MAX_METADATA_KEY_LEN = 128
# Metadata holds the SDK's copy of the bundle's source text, so its values are large and multi-line.
MAX_METADATA_BYTES = 1 << 20
MAX_ID_LEN = 64
FRAMEWORK_TYPES = {"pytorch", "tensorflow", "custom_base_image"}


def validate_name(field: str, name: str) -> str:
    """Names are DNS-label-like so they are safe in Ray application names, paths and URLs."""
    if not name:
        raise InvalidArgument(field, "must not be empty")
    if len(name) > 63:
        raise InvalidArgument(field, f"must be at most 63 characters, got {len(name)}")
    if not NAME_RE.fullmatch(name):
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
    validate_printable(field, request_id)
    return request_id


def validate_printable(field: str, text: str) -> None:
    """Refuses control, format and separator characters other than the plain space (newline,
    carriage return, NUL, zero-width and bidi marks): they change what a value means where it is
    written out (a requirements file, a log line, an HTTP request)."""
    if not text.isprintable():
        bad = next(c for c in text if not c.isprintable())
        raise InvalidArgument(field, f"must not contain control characters, got {bad!r}")


def validate_id(field: str, value: str) -> str:
    """Server-issued ids (task and job ids): required, short and printable."""
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_ID_LEN:
        raise InvalidArgument(field, f"must be at most {MAX_ID_LEN} characters")
    validate_printable(field, value)
    return value


def validate_http_url(field: str, url: str) -> None:
    """A callback URL: http(s), at most MAX_URL_LEN characters, no whitespace or control characters."""
    if len(url) > MAX_URL_LEN:
        raise InvalidArgument(field, f"must be at most {MAX_URL_LEN} characters")
    if not url.startswith(("http://", "https://")):
        raise InvalidArgument(field, "must be an http(s) URL")
    validate_printable(field, url)
    if " " in url:
        raise InvalidArgument(field, "must not contain spaces (percent-encode them)")


def validate_labels(field: str, labels: dict[str, str]) -> None:
    """At most MAX_LABELS labels; keys 1-63 and values 0-63 printable characters."""
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(field, f"at most {MAX_LABELS} labels, got {len(labels)}")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_KEY_LEN:
            raise InvalidArgument(f"{field}[{key[:64]!r}]", f"keys must be 1 to {MAX_LABEL_KEY_LEN} characters")
        if len(value) > MAX_LABEL_VALUE_LEN:
            raise InvalidArgument(f"{field}[{key!r}]", f"values must be at most {MAX_LABEL_VALUE_LEN} characters")
        validate_printable(f"{field}[{key!r}]", key + value)


def validate_string_map(field: str, values: dict[str, str], max_entries: int, max_key: int, max_value: int) -> None:
    if len(values) > max_entries:
        raise InvalidArgument(field, f"at most {max_entries} entries, got {len(values)}")
    for key, value in values.items():
        if not key or len(key) > max_key:
            raise InvalidArgument(f"{field}[{key[:64]!r}]", f"keys must be 1 to {max_key} characters")
        validate_printable(f"{field}[{key!r}]", key)
        if len(value) > max_value:
            raise InvalidArgument(f"{field}.{key}", f"must be at most {max_value} characters")


def validate_env_params(field: str, env_params: dict[str, str]) -> None:
    """Launch's documented rules: framework_type is required; pytorch needs pytorch_image_tag and
    tensorflow needs tensorflow_version."""
    validate_string_map(field, env_params, MAX_ENV_PARAMS, MAX_ENV_PARAM_KEY_LEN, MAX_ENV_PARAM_VALUE_LEN)
    for key, value in env_params.items():
        validate_printable(f"{field}.{key}", value)
    framework = env_params.get("framework_type", "")
    if not framework:
        raise InvalidArgument(f"{field}.framework_type", "is required")
    if framework not in FRAMEWORK_TYPES:
        raise InvalidArgument(
            f"{field}.framework_type", f"must be one of {sorted(FRAMEWORK_TYPES)}, got {framework[:64]!r}"
        )
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
        validate_printable(f"{field}[{index}]", line)
        if line.lstrip().startswith("-"):
            raise InvalidArgument(f"{field}[{index}]", "must be one requirement, not a pip option")


def validate_app_config(field: str, app_config_json: str) -> None:
    """At most 1 MiB, a JSON object under json_input's rules (depth, integer digits, finite numbers)."""
    if app_config_json:
        parse_json_object(field, app_config_json, MAX_APP_CONFIG_BYTES)


def validate_metadata(field: str, metadata: dict[str, str]) -> None:
    validate_string_map(field, metadata, MAX_METADATA, MAX_METADATA_KEY_LEN, MAX_METADATA_BYTES)
    if sum(len(v.encode("utf-8", errors="surrogatepass")) for v in metadata.values()) > MAX_METADATA_BYTES:
        raise InvalidArgument(field, f"values must total at most {MAX_METADATA_BYTES} bytes")


def validate_bundle_spec(spec: BundleSpec, prefix: str = "bundle") -> None:
    """Checks every declared field of a bundle; the order matches the proto's field order so the
    first error a client sees is the first field it got wrong."""
    validate_name(f"{prefix}.name", spec.name)
    if spec.packaging_type not in (PackagingType.CLOUDPICKLE, PackagingType.ZIP):
        raise InvalidArgument(f"{prefix}.packaging_type", "must be CLOUDPICKLE or ZIP")
    if spec.packaging_type is PackagingType.CLOUDPICKLE:
        if spec.form is BundleForm.UNSPECIFIED:
            raise InvalidArgument(f"{prefix}.form", "is required for cloudpickle bundles")
        if not PYTHON_VERSION_RE.fullmatch(spec.python_version):
            raise InvalidArgument(
                f"{prefix}.python_version",
                f"must be 'major.minor' such as '3.11', got {spec.python_version[:16]!r}",
            )
    else:
        if spec.form is not BundleForm.UNSPECIFIED:
            raise InvalidArgument(f"{prefix}.form", "must be unset for zip bundles")
        for key in ("load_predict_fn_module_path", "load_model_fn_module_path"):
            path = spec.metadata.get(key, "")
            if not MODULE_PATH_RE.fullmatch(path):
                raise InvalidArgument(
                    f"{prefix}.metadata.{key}",
                    f"must be a dotted module path such as 'my_module.my_file.f', got {path[:256]!r}",
                )
        if spec.python_version and not PYTHON_VERSION_RE.fullmatch(spec.python_version):
            raise InvalidArgument(f"{prefix}.python_version", "must be 'major.minor' such as '3.11'")
    validate_requirements(f"{prefix}.requirements", spec.requirements)
    validate_env_params(f"{prefix}.env_params", spec.env_params)
    validate_metadata(f"{prefix}.metadata", spec.metadata)
    validate_app_config(f"{prefix}.app_config_json", spec.app_config_json)


def validate_sha256(field: str, value: str) -> None:
    if not SHA256_RE.fullmatch(value):
        raise InvalidArgument(field, "must be 64 lowercase hex characters")


def validate_page_size(field: str, page_size: int) -> int:
    if page_size < 0 or page_size > MAX_PAGE_SIZE:
        raise InvalidArgument(field, f"must be between 0 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size or 100

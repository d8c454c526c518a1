"""Resource rules: Kubernetes memory quantities and the gpu_type → Ray accelerator_type table."""

from __future__ import annotations

import re
from decimal import Decimal

from launch_server.domain.errors import InvalidArgument

# Kubernetes quantity suffixes (resource.Quantity): binary, decimal, and the exponent form.
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY_RE = re.compile(
    r"(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?[0-9]+))?"
)
MIN_QUANTITY_BYTES = 1 << 20
MAX_QUANTITY_BYTES = 1 << 50  # 1 PiB: far past any node, well inside every integer column
MAX_QUANTITY_LEN = 64
# Exponents past this put any mantissa of MAX_QUANTITY_LEN digits outside [1Mi, 1Pi]; checking
# it first keeps Decimal from computing 10**999999999.
_MAX_EXPONENT = 100

# gpu_type (Launch's names) → Ray's accelerator_type resource (what nodes advertise as
# "accelerator_type:<T>"). Kept here so the API documents and validates the same table.
GPU_TYPES: dict[str, str] = {
    "nvidia-tesla-t4": "T4",
    "nvidia-tesla-v100": "V100",
    "nvidia-tesla-a10g": "A10G",
    "nvidia-ampere-a10": "A10G",
    "nvidia-ampere-a100": "A100",
    "nvidia-ampere-a100e": "A100-80G",
    "nvidia-l4": "L4",
    "nvidia-hopper-h100": "H100",
    "nvidia-hopper-h100-1g20gb": "H100",
    "nvidia-hopper-h200": "H200",
    "nvidia-h200": "H200",
}


def parse_memory(field: str, quantity: str) -> int:
    """Bytes for a Kubernetes quantity ("512Mi", "8Gi", "1G", "1e9", "1000000"), between 1Mi and
    1Pi. Forms Kubernetes rejects, such as "8GB", "8 Gi" or "8Gi\\n", are rejected here too. The
    text's length and exponent are checked before any arithmetic, so no spelling is costly."""
    quantity = quantity or ""
    match = _QUANTITY_RE.fullmatch(quantity) if len(quantity) <= MAX_QUANTITY_LEN else None
    if not match:
        raise InvalidArgument(
            field,
            f"{quantity[:MAX_QUANTITY_LEN]!r} is not a Kubernetes quantity such as '512Mi', '8Gi', '1G' or "
            f"'1000000' (at most {MAX_QUANTITY_LEN} characters)",
        )
    number = Decimal(match["number"])  # the pattern admits only plain decimal digits
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if number and exponent > _MAX_EXPONENT:
            raise InvalidArgument(field, f"{quantity!r} is more than 1Pi ({MAX_QUANTITY_BYTES} bytes)")
        value = number.scaleb(max(exponent, -_MAX_EXPONENT))
    else:
        suffix = match["suffix"] or ""
        value = number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])
    if value < MIN_QUANTITY_BYTES:
        raise InvalidArgument(field, f"{quantity!r} is less than 1Mi; replicas need at least that")
    if value > MAX_QUANTITY_BYTES:
        raise InvalidArgument(field, f"{quantity!r} is more than 1Pi ({MAX_QUANTITY_BYTES} bytes)")
    return int(value)


def accelerator_for(field: str, gpu_type: str) -> str:
    if gpu_type not in GPU_TYPES:
        raise InvalidArgument(field, f"unknown gpu_type {gpu_type[:64]!r}; known: {sorted(GPU_TYPES)}")
    return GPU_TYPES[gpu_type]

"""Resource rules: Kubernetes memory quantities and the gpu_type → Ray accelerator_type table."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .errors import InvalidArgument

# Kubernetes quantity suffixes (resource.Quantity): binary, decimal, and the exponent form.
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY_RE = re.compile(
    r"^(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)

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
    """Bytes for a Kubernetes quantity ("512Mi", "8Gi", "1G", "1e9", "1000000"). Forms Kubernetes
    rejects, such as "8GB" or "8 Gi", are rejected here too."""
    match = _QUANTITY_RE.match(quantity or "")
    if not match:
        raise InvalidArgument(
            field, f"{quantity!r} is not a Kubernetes quantity such as '512Mi', '8Gi', '1G' or '1000000'"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        raise InvalidArgument(field, f"{quantity!r} is not a number") from None
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        value = number * _BINARY[suffix]
    elif suffix in _DECIMAL:
        value = number * _DECIMAL[suffix]
    else:
        value = number * (Decimal(10) ** int(suffix[1:]))
    if value < 1 << 20:
        raise InvalidArgument(field, f"{quantity!r} is less than 1Mi; replicas need at least that")
    return int(value)


def accelerator_for(field: str, gpu_type: str) -> str:
    if gpu_type not in GPU_TYPES:
        raise InvalidArgument(field, f"unknown gpu_type {gpu_type!r}; known: {sorted(GPU_TYPES)}")
    return GPU_TYPES[gpu_type]

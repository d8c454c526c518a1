"""The one way client JSON (args_json, app_config_json) is read, on the server and in replicas.
Python's json module alone answers some bad documents with errors that are not JSONDecodeError
(RecursionError for deep nesting, ValueError past 4,300 integer digits) and accepts others the
contract forbids (NaN, Infinity, 1e999 read as infinity); here each becomes InvalidArgument naming
the field, so no caller escapes as INTERNAL or UNKNOWN."""

from __future__ import annotations

import json
import math
from typing import Any

from launch_server.domain.errors import InvalidArgument

MAX_ARGS_JSON_BYTES = 16 << 20
MAX_APP_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 100
MAX_INT_DIGITS = 4300


class _Refused(ValueError):
    """A value the contract forbids, raised from inside the parser's hooks."""


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not allowed; JSON numbers must be finite")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]!r} is out of range; JSON numbers must be finite")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"integers may have at most {MAX_INT_DIGITS} digits")
    return int(text)


def _depth(value: Any) -> int:
    """Nesting depth of a parsed document, counted without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_size(field: str, text: str, max_bytes: int) -> None:
    """UTF-8 size at most max_bytes; a text longer in characters is over without encoding it."""
    if len(text) > max_bytes or len(text.encode("utf-8", errors="surrogatepass")) > max_bytes:
        raise InvalidArgument(field, f"must be at most {max_bytes} bytes of UTF-8")


def parse_json(field: str, text: str, max_bytes: int) -> Any:
    """The document in `text`: at most max_bytes, nested at most MAX_DEPTH deep, integers of at
    most MAX_INT_DIGITS digits, finite numbers only. Any other document is InvalidArgument(field)."""
    check_size(field, text, max_bytes)
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except _Refused as exc:
        raise InvalidArgument(field, f"is not accepted JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgument(field, f"is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError and the interpreter's own integer-size limit
        raise InvalidArgument(field, f"is not valid JSON: {exc}") from None
    if _depth(value) > MAX_DEPTH:
        raise InvalidArgument(field, f"is nested more than {MAX_DEPTH} levels deep")
    return value


def parse_json_object(field: str, text: str, max_bytes: int, what: str = "a JSON object") -> dict[str, Any]:
    """parse_json for documents that must be an object (keyword arguments, an app config)."""
    value = parse_json(field, text, max_bytes)
    if not isinstance(value, dict):
        raise InvalidArgument(field, f"must be {what}, not a JSON {type(value).__name__}")
    return value

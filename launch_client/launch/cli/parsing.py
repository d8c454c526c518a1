"""Parsers for structured command-line values (JSON objects, key=value pairs, input files), so a
malformed value is reported as a usage error naming the option, before anything reaches the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def json_object(value: str, option: str) -> dict[str, Any]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg} at position {exc.pos}", param_hint=option) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"x\": 1}'", param_hint=option)
    return parsed


def key_values(pairs: tuple[str, ...], option: str, typed: bool) -> dict[str, Any]:
    """k=v pairs; with typed, values that read as JSON (numbers, booleans) become those types."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint=option)
        value: Any = raw
        if typed:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        out[key.strip()] = value
    return out


def jsonl_objects(path: Path, option: str) -> list[dict[str, Any]]:
    """One JSON object per non-blank line: each becomes one input's keyword arguments."""
    inputs: list[dict[str, Any]] = []
    for number, line in enumerate(_read_lines(path, option), start=1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{path}:{number}: not valid JSON: {exc.msg}", param_hint=option) from None
        if not isinstance(parsed, dict):
            raise click.BadParameter(f"{path}:{number}: each line must be a JSON object", param_hint=option)
        inputs.append(parsed)
    if not inputs:
        raise click.BadParameter(f"{path} holds no inputs", param_hint=option)
    return inputs


def url_lines(path: Path, option: str) -> list[str]:
    """One URL per line; blank lines and lines starting with # are skipped."""
    urls = [line.strip() for line in _read_lines(path, option) if line.strip() and not line.lstrip().startswith("#")]
    if not urls:
        raise click.BadParameter(f"{path} holds no URLs", param_hint=option)
    return urls


def _read_lines(path: Path, option: str) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=option) from None


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: str, option: str, most_s: float) -> float:
    """A duration such as 30s, 10m, 2h, 1d or a plain number of seconds; at most `most_s`."""
    text = value.strip().lower()
    unit = DURATION_UNITS.get(text[-1:], None) if text else None
    number = text[:-1] if unit is not None else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise click.BadParameter(
            f"expected a duration such as 30s, 10m, 2h or 1d, got {value!r}", param_hint=option
        ) from None
    if not 0 <= seconds <= most_s:  # NaN fails too
        raise click.BadParameter(f"must be between 0 and {most_s:.0f} seconds", param_hint=option)
    return seconds

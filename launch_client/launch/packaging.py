"""Builds bundle artifacts on the client: the cloudpickle of one of the three documented forms,
and the zip of source folders that keeps each folder's own name."""

from __future__ import annotations

import inspect
import io
import os
import zipfile
from collections.abc import Callable
from typing import Any

import cloudpickle

from .find_packages import local_modules

FORM_PREDICT_FN_OR_CLS = "PREDICT_FN_OR_CLS"
FORM_WITH_MODEL = "LOAD_PREDICT_FN_WITH_MODEL"
FORM_WITH_LOAD_MODEL_FN = "LOAD_PREDICT_FN_WITH_LOAD_MODEL_FN"
MAX_SOURCE_CHARS = 32_000


def choose_form(
    predict_fn_or_cls: Callable | None,
    load_predict_fn: Callable | None,
    model: Any,
    load_model_fn: Callable | None,
) -> str:
    """Exactly one of the documented forms; anything else is refused before any upload."""
    forms = [
        predict_fn_or_cls is not None,
        load_predict_fn is not None and model is not None,
        load_predict_fn is not None and load_model_fn is not None,
    ]
    stray = (predict_fn_or_cls is not None) and (
        load_predict_fn is not None or model is not None or load_model_fn is not None
    )
    if sum(forms) != 1 or stray or (model is not None and load_model_fn is not None):
        raise ValueError(
            "A model bundle consists of exactly {predict_fn_or_cls}, {load_predict_fn + model}, "
            "or {load_predict_fn + load_model_fn}."
        )
    if predict_fn_or_cls is not None:
        return FORM_PREDICT_FN_OR_CLS
    return FORM_WITH_MODEL if model is not None else FORM_WITH_LOAD_MODEL_FN


def _source(obj: Any) -> str | None:
    try:
        target = obj if inspect.isfunction(obj) or inspect.isclass(obj) else type(obj)
        return inspect.getsource(target)[:MAX_SOURCE_CHARS]
    except (OSError, TypeError):
        return None


def pickle_bundle(
    form: str,
    predict_fn_or_cls: Callable | None,
    load_predict_fn: Callable | None,
    model: Any,
    load_model_fn: Callable | None,
    globals_copy: dict[str, Any] | None,
) -> tuple[bytes, dict[str, str]]:
    """Returns the pickled bundle and the metadata (source text) kept with it. The user's own
    modules found in globals_copy are pickled by value for this dump only."""
    if form == FORM_PREDICT_FN_OR_CLS:
        obj: Any = predict_fn_or_cls
        sources = {"predict_fn_or_cls": _source(predict_fn_or_cls)}
    elif form == FORM_WITH_MODEL:
        obj = {"model": model, "load_predict_fn": load_predict_fn}
        sources = {"load_predict_fn": _source(load_predict_fn)}
    else:
        obj = {"load_model_fn": load_model_fn, "load_predict_fn": load_predict_fn}
        sources = {"load_predict_fn": _source(load_predict_fn), "load_model_fn": _source(load_model_fn)}
    registered = []
    for module in local_modules(globals_copy or {}):
        try:
            cloudpickle.register_pickle_by_value(module)
            registered.append(module)
        except ValueError:
            continue
    try:
        data = cloudpickle.dumps(obj)
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)
    return data, {k: v for k, v in sources.items() if v}


def read_requirements_file(path: str) -> list[str]:
    """Requirement lines with comments (whole-line and trailing) and blank lines dropped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"requirements_path: cannot read {path!r}: {exc}") from None
    requirements = []
    for line in lines:
        text = line.split(" #", 1)[0].strip()
        if text and not text.startswith("#"):
            requirements.append(text)
    return requirements


def zip_directories(base_paths: list[str]) -> bytes:
    """Zips each base directory under its own name (my_module1/..., my_module2/...)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for base in base_paths:
            base = os.path.abspath(base)
            if not os.path.isdir(base):
                raise ValueError(f"base_paths: {base!r} is not a directory")
            parent = os.path.dirname(base)
            for root, dirs, files in os.walk(base):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                for name in sorted(files):
                    full = os.path.join(root, name)
                    zf.write(full, arcname=os.path.relpath(full, parent))
    return buffer.getvalue()

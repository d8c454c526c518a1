"""Infers pip requirements from the modules a user's globals import (the `globals_copy` they
pass), and finds which of those modules are the user's own code, to be pickled by value."""

from __future__ import annotations

import sys
import sysconfig
import types
from importlib import metadata
from pathlib import Path
from typing import Any

_SITE_DIRS = {Path(p).resolve() for p in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])}
_STDLIB_DIR = Path(sysconfig.get_paths()["stdlib"]).resolve()


def get_imports(globals_copy: dict[str, Any]) -> list[types.ModuleType]:
    """Modules referenced from the globals, directly or as the module of an imported name."""
    modules: dict[str, types.ModuleType] = {}
    for value in globals_copy.values():
        if isinstance(value, types.ModuleType):
            modules[value.__name__] = value
        else:
            module_name = getattr(value, "__module__", None)
            if isinstance(module_name, str) and module_name in sys.modules and module_name != "__main__":
                modules[module_name] = sys.modules[module_name]
    return list(modules.values())


def _module_file(module: types.ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def is_installed(module: types.ModuleType) -> bool:
    """True for modules that come from site-packages or the standard library (or are built in)."""
    path = _module_file(module)
    if path is None:
        return True
    return any(d in path.parents for d in _SITE_DIRS) or _STDLIB_DIR in path.parents


def local_modules(globals_copy: dict[str, Any]) -> list[types.ModuleType]:
    """The user's own modules: these are pickled by value so replicas need not have them."""
    return [m for m in get_imports(globals_copy) if not is_installed(m) and m.__name__ != "launch"]


def find_packages_from_imports(globals_copy: dict[str, Any]) -> dict[str, str]:
    """Maps the distributions that provide the imported top-level packages to their versions,
    skipping the standard library, the user's own modules and the SDK's own dependencies."""
    mapping = metadata.packages_distributions()
    skip = {"launch-serving", "cloudpickle", "grpcio", "protobuf", "grpcio-status"}
    found: dict[str, str] = {}
    for module in get_imports(globals_copy):
        top = module.__name__.split(".")[0]
        if top in sys.stdlib_module_names or not is_installed(module):
            continue
        for dist in mapping.get(top, []):
            if dist.lower() in skip:
                continue
            try:
                found[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    return dict(sorted(found.items()))

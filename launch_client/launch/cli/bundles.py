"""`launch bundles`: list, inspect and delete model bundles (creating one needs Python code, so
that stays in the SDK)."""

from __future__ import annotations

import json

import click

from launch.model_bundle import ModelBundle

from .failures import CliError
from .output import print_fields, print_json, print_message, print_table
from .state import CliState, pass_state


def _size(size_bytes: int) -> str:
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(size_bytes)


def bundle_fields(bundle: ModelBundle) -> list[tuple[str, object]]:
    return [
        ("name", bundle.name),
        ("bundle_id", bundle.bundle_id),
        ("packaging_type", bundle.packaging_type),
        ("python_version", bundle.python_version),
        ("location", bundle.location),
        ("size", _size(bundle.size_bytes)),
        ("sha256", bundle.sha256),
        ("created_at", bundle.created_at),
        ("requirements", bundle.requirements),
        ("env_params", bundle.env_params),
        ("metadata", bundle.metadata),
        ("app_config", json.dumps(bundle.app_config) if bundle.app_config is not None else None),
    ]


@click.group("bundles")
def bundles_group() -> None:
    """List, inspect and delete model bundles."""


@bundles_group.command("list")
@pass_state
def bundles_list(state: CliState) -> None:
    """Every bundle you own, newest first."""
    bundles = state.client().list_model_bundles()
    if state.json:
        print_json(bundles)
        return
    print_table(
        ["NAME", "ID", "PACKAGING", "PYTHON", "SIZE", "CREATED"],
        [(b.name, b.bundle_id, b.packaging_type, b.python_version, _size(b.size_bytes), b.created_at) for b in bundles],
    )


@bundles_group.command("get")
@click.argument("name")
@pass_state
def bundles_get(state: CliState, name: str) -> None:
    """Show one bundle."""
    bundle = state.client().get_model_bundle(name)
    if state.json:
        print_json(bundle)
    else:
        print_fields(bundle_fields(bundle), title=f"bundle {bundle.name}")


@bundles_group.command("delete")
@click.argument("name")
@pass_state
def bundles_delete(state: CliState, name: str) -> None:
    """Delete a bundle (the server refuses while an endpoint uses it)."""
    deleted = state.client().delete_model_bundle(name)
    if state.json:
        print_json({"name": name, "deleted": deleted})
    elif deleted:
        print_message(f"deleted bundle '{name}'")
    if not deleted:
        raise CliError(f"bundle '{name}' was not deleted")

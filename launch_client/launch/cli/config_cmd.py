"""`launch config`: save and show the connection settings.

`get` shows the settings in effect (after flags and environment), with their source, because
"which key am I using?" is the question people ask; the key is shown by its public id only."""

from __future__ import annotations

import sys

import click

from .output import print_json, print_message, print_table
from .settings import CONFIG_KEYS, config_path, load_config, mask_api_key, save_config, validate
from .state import CliState, pass_state


def _shown(key: str, value: str | None) -> str:
    return mask_api_key(value) if key == "api_key" else (value or "")


@click.group("config")
def config_group() -> None:
    """Save and show the API key and server address."""


@config_group.command("set")
@click.argument("key", type=click.Choice(CONFIG_KEYS))
@click.argument("value")
@pass_state
def config_set(state: CliState, key: str, value: str) -> None:
    """Save KEY (api_key or endpoint) in the config file. A VALUE of "-" is read from stdin, which
    keeps the key out of shell history."""
    if value == "-":
        value = sys.stdin.readline()
    value = validate(key, value)
    path = config_path()
    values = load_config(path)
    values[key] = value
    save_config(path, values)
    if state.json:
        print_json({"key": key, "value": _shown(key, value), "path": str(path)})
    else:
        print_message(f"saved {key} = {_shown(key, value)} in {path}")


@config_group.command("unset")
@click.argument("key", type=click.Choice(CONFIG_KEYS))
@pass_state
def config_unset(state: CliState, key: str) -> None:
    """Remove KEY from the config file."""
    path = config_path()
    values = load_config(path)
    removed = values.pop(key, None) is not None
    if removed:
        save_config(path, values)
    if state.json:
        print_json({"key": key, "removed": removed, "path": str(path)})
    else:
        print_message(f"removed {key} from {path}" if removed else f"{key} was not set in {path}")


@config_group.command("get")
@click.argument("key", type=click.Choice(CONFIG_KEYS), required=False)
@pass_state
def config_get(state: CliState, key: str | None) -> None:
    """Show the settings in effect and where each comes from (flag, env, config, default)."""
    settings = state.settings()
    if key is not None:
        setting = settings[key]
        if state.json:
            print_json({"key": key, "value": _shown(key, setting.value), "source": setting.source})
        else:
            click.echo(_shown(key, setting.value))
        return
    path = config_path()
    if state.json:
        print_json(
            {
                "config_path": str(path),
                **{k: {"value": _shown(k, s.value), "source": s.source} for k, s in settings.items()},
            }
        )
        return
    print_table(
        ["SETTING", "VALUE", "SOURCE"],
        [(k, _shown(k, s.value), s.source) for k, s in settings.items()],
    )
    print_message(f"config file: {path}")

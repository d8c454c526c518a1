"""Where the CLI's connection settings come from, and the config file that remembers them.

Precedence is flag > environment > config file > built-in default, so a one-off flag or a CI
variable always wins over what a person saved earlier. The config file holds a secret (the API
key), so it is written atomically with owner-only permissions and never printed whole."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from launch.connection import DEFAULT_ENDPOINT

CONFIG_KEYS = ("api_key", "endpoint")
ENV_VARS = {"api_key": "LAUNCH_API_KEY", "endpoint": "LAUNCH_ENDPOINT"}
DEFAULTS: dict[str, str | None] = {"api_key": None, "endpoint": DEFAULT_ENDPOINT}
_KEY_PATTERN = re.compile(r"^(?P<prefix>[A-Za-z]+)_(?P<key_id>[0-9A-Za-z]+)_(?P<secret>.+)$")


class ConfigError(Exception):
    """The config file cannot be read or written, or a value is not acceptable."""


@dataclass(frozen=True)
class Setting:
    """One resolved setting and where it came from (shown by `launch config get`)."""

    value: str | None
    source: str  # "flag", "env", "config", "default" or "unset"


def config_path() -> Path:
    """$LAUNCH_CONFIG, else ~/.config/launch/config.json."""
    override = os.environ.get("LAUNCH_CONFIG")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".config" / "launch" / "config.json"


def load_config(path: Path) -> dict[str, str]:
    """The saved settings; a missing file is simply empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return {k: str(v) for k, v in data.items() if k in CONFIG_KEYS and v is not None}


def validate(key: str, value: str) -> str:
    """Rejects values that could only fail later, with a message naming the setting."""
    if key not in CONFIG_KEYS:
        raise ConfigError(f"unknown setting {key!r}: expected one of {', '.join(CONFIG_KEYS)}")
    value = value.strip()
    if not value or any(c.isspace() for c in value):
        raise ConfigError(f"{key}: value must be non-empty and contain no spaces")
    if key == "endpoint":
        bare = value.removeprefix("https://").removeprefix("http://").rstrip("/")
        host, _, port = bare.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"endpoint: expected HOST:PORT (optionally http:// or https://), got {value!r}")
    return value


def save_config(path: Path, values: dict[str, str]) -> None:
    """Writes the whole file atomically (temp file + rename) so a crash never leaves half a key,
    and with mode 0600 from the first byte so the key is never briefly world-readable."""
    parent = path.parent
    if not parent.exists():
        try:
            parent.mkdir(parents=True, mode=0o700)
            os.chmod(parent, 0o700)  # mkdir's mode is reduced by the umask
        except OSError as exc:
            raise ConfigError(f"cannot create config directory {parent}: {exc.strerror}") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".config-", suffix=".tmp")  # created 0600
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(values, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write config file {path}: {exc.strerror}") from None


def resolve(flags: dict[str, str | None], path: Path) -> dict[str, Setting]:
    """Every setting with its winning source: flag > env > config file > default."""
    saved: dict[str, str] | None = None
    out: dict[str, Setting] = {}
    for key in CONFIG_KEYS:
        if flags.get(key):
            out[key] = Setting(flags[key], "flag")
            continue
        env_value = os.environ.get(ENV_VARS[key])
        if env_value:
            out[key] = Setting(env_value, "env")
            continue
        if saved is None:
            saved = load_config(path)
        if saved.get(key):
            out[key] = Setting(saved[key], "config")
        elif DEFAULTS[key] is not None:
            out[key] = Setting(DEFAULTS[key], "default")
        else:
            out[key] = Setting(None, "unset")
    return out


def mask_api_key(key: str | None) -> str:
    """Only the public key id survives (what the server logs and Connection's repr shows):
    `lk_<id>_<secret>` reads `lk_<id>…`; a key of any other shape is hidden entirely."""
    if not key:
        return ""
    match = _KEY_PATTERN.match(key)
    if match is None:
        return "…(hidden)"
    return f"{match['prefix']}_{match['key_id']}…"

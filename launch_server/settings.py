"""Server settings: flags override environment variables (LAUNCH_*), which override embedded
defaults that keep everything under one data directory and need no other service."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LAUNCH_{name}", default)


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(_env("DATA_DIR", ".launch")).resolve())
    bind: str = field(default_factory=lambda: _env("BIND", "127.0.0.1:50051"))
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", ""))
    storage_url: str = field(default_factory=lambda: _env("STORAGE_URL", ""))
    s3_endpoint_url: str | None = field(default_factory=lambda: _env("S3_ENDPOINT_URL", "") or None)
    s3_region: str | None = field(default_factory=lambda: _env("S3_REGION", "") or None)
    readable_prefixes: tuple[str, ...] = field(
        default_factory=lambda: tuple(p for p in _env("READABLE_PREFIXES", "").split(",") if p)
    )
    max_upload_bytes: int = field(default_factory=lambda: int(_env("MAX_UPLOAD_BYTES", str(4 << 30))))
    auth_cache_seconds: float = field(default_factory=lambda: float(_env("AUTH_CACHE_SECONDS", "2")))
    ray_address: str = field(default_factory=lambda: _env("RAY_ADDRESS", ""))
    serving: bool = field(default_factory=lambda: _env("SERVING", "1") not in ("0", "false", "no"))
    dev_key_file: Path | None = None

    def resolved(self) -> Settings:
        """Fills the defaults that depend on data_dir and creates the directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'launch.db'}"
        if not self.storage_url:
            self.storage_url = (self.data_dir / "storage").as_uri()
        if self.dev_key_file is None:
            self.dev_key_file = self.data_dir / "dev_api_key"
        return self

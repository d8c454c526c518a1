"""A fresh server started under the common umask 0o022 keeps its data private: the data
directory and the storage root are 0700, the SQLite database (and its -wal/-shm files) and the
development key file 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support import start_server


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fresh_server_creates_its_files_private(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh" / "data"  # created by the server, not by the test
    old = os.umask(0o022)
    try:
        handle = start_server(
            tmp_path,
            database_url=f"sqlite:///{fresh / 'launch.db'}",
            extra_env={"LAUNCH_DATA_DIR": str(fresh)},
        )
    finally:
        os.umask(old)
    try:
        assert mode(fresh) == 0o700
        assert mode(fresh / "launch.db") == 0o600
        assert mode(fresh / "dev_api_key") == 0o600
        assert mode(fresh / "storage") == 0o700
        for name in ("launch.db-wal", "launch.db-shm"):
            if (fresh / name).exists():
                assert mode(fresh / name) == 0o600, name
    finally:
        handle.stop()

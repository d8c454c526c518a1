"""Reads replicas' start-up logs and pip install output from the Ray session's log directory.

The files are read straight from disk: the server runs on a Ray node (it is the driver), and
Ray's state API would need the dashboard, which local mode leaves off to save memory. On a
multi-node cluster this sees the files of the server's own node only."""

from __future__ import annotations

import glob
import os

from .cluster import session_log_dir

MAX_BYTES = 1 << 20


def _tail(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def endpoint_logs(app_name: str, with_pip: bool, limit: int = MAX_BYTES) -> str:
    root = session_log_dir()
    if root is None:
        return ""
    sections: list[str] = []
    for path in sorted(glob.glob(os.path.join(root, "serve", f"replica_{app_name}_*.log")), key=os.path.getmtime):
        sections.append(f"==> {os.path.basename(path)} <==\n{_tail(path, limit // 4)}")
    if with_pip:
        for path in sorted(glob.glob(os.path.join(root, "runtime_env_setup-*.log")), key=os.path.getmtime):
            sections.append(f"==> {os.path.basename(path)} (pip install) <==\n{_tail(path, limit // 4)}")
    text = "\n".join(sections)
    return text[-limit:]

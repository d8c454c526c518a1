"""Reads replicas' start-up logs and pip install output from the Ray session's log directory.

The files are read straight from disk: the server runs on a Ray node (it is the driver), and
Ray's state API would need the dashboard, which local mode leaves off to save memory. On a
multi-node cluster this sees the files of the server's own node only.

Ray writes every runtime_env setup of one job (all Serve replicas belong to the controller's job)
to one `runtime_env_setup-<job id>.log`, so that file mixes every endpoint's pip output, and
requirement URLs can carry tokens. The reconciler therefore names a log of the endpoint's own in
its runtime_env (`config.log_files`, which Ray's setup logger writes beside the job's file), and
only that one is read here."""

from __future__ import annotations

import glob
import os

from launch_server.serving.cluster import session_log_dir

MAX_BYTES = 1 << 20


def pip_log_name(app_name: str) -> str:
    """The file (in the session's log directory) an endpoint's runtime_env setup writes to."""
    return f"launch_pip_{app_name}.log"


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
    pattern = os.path.join(glob.escape(root), "serve", f"replica_{glob.escape(app_name)}_*.log")
    for path in sorted(glob.glob(pattern), key=os.path.getmtime):
        sections.append(f"==> {os.path.basename(path)} <==\n{_tail(path, limit // 4)}")
    if with_pip:
        path = os.path.join(root, pip_log_name(app_name))
        if os.path.exists(path):
            sections.append(f"==> {os.path.basename(path)} (pip install) <==\n{_tail(path, limit // 4)}")
    text = "\n".join(sections)
    return text[-limit:]

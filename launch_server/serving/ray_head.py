"""`python -m launch_server.serving.ray_head <ray start options>`: the server's local Ray head.

Runs `ray start --head --block` in a process of its own. The server is a multi-threaded gRPC
process; Ray spawns its raylet, GCS and agents with `preexec_fn`, so starting them from inside the
server means fork() of a threaded process and Python code between fork and exec, where a lock held
by another thread can stall the child (the raylet then never registers and `ray.init` times out
after 30 s). This process is single-threaded when Ray starts, and the server spawns it without a
`preexec_fn`, so nothing runs between fork and exec there.

It asks the kernel to send it SIGTERM when the server dies (even by SIGKILL); `ray start --block`
then ends every Ray process it started, and it exits by itself if one of them dies, which is how
the server learns that its local Ray is gone."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_ENV = "LAUNCH_RAY_HEAD_PARENT"
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        sys.exit("launch-server exited before its Ray head started")


def main() -> None:
    _die_with_parent()
    from ray.scripts.scripts import main as ray_cli

    sys.argv = ["ray", "start", "--head", "--block", *sys.argv[1:]]
    ray_cli()


if __name__ == "__main__":
    main()

"""The Ray cluster lost under load: a real launch-server running its own local Ray (not the shared
session cluster), whose GCS is killed by pid while an async endpoint has tasks queued and running.
The server must report the endpoint as not serving with a reason, keep the queued tasks waiting
(their attempts unspent), start a new local Ray, redeploy the endpoint from the database and
finish every acknowledged task. Counts: acknowledged / finished / lost, printed per run."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import launch
import pytest

from tests.integration.test_async_faults import make_double, sqlite_rows, state_counts, wait_batch
from tests.integration.test_endpoints import ENV, SMALL, client_for, wait_for, wait_status
from tests.support import ServerHandle, pids_with_env, start_server

ENDPOINT_READY_S = 240  # a loaded 2-core machine, and a fresh Ray of its own
MARKER = "LAUNCH_TEST_RAY_FAULT_MARKER"


def descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process below `root` (read from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    stack = [root]
    while stack:
        for child in parents.get(stack.pop(), []):
            try:
                found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            stack.append(child)
    return found


def end_marked(marker: str) -> None:
    """Ends, by pid, whatever the test's server and its Ray left running."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_with_env(MARKER, marker):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(2)


@pytest.fixture
def local_ray_server(tmp_path: Path) -> Iterator[ServerHandle]:
    """A SQLite serving server that starts (and restarts) its own local Ray."""
    marker = uuid.uuid4().hex
    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a limit
    env = {
        MARKER: marker,
        "RAY_TMPDIR": ray_tmp,
        "LAUNCH_SERVING": "1",
        "LAUNCH_RAY_ADDRESS": "",  # its own local Ray
        "LAUNCH_RAY_NUM_CPUS": "4",
        "LAUNCH_RECONCILE_INTERVAL_S": "0.5",
        "LAUNCH_TASK_MAX_ATTEMPTS": "2",
    }
    server = start_server(tmp_path / "data", extra_env=env)
    try:
        yield server
    finally:
        server.stop()
        end_marked(marker)


def gcs_pid(server: ServerHandle) -> int:
    found = [pid for pid, cmd in descendants(server.proc.pid).items() if "gcs_server" in cmd.split(" ", 1)[0]]
    assert len(found) == 1, descendants(server.proc.pid)
    return found[0]


def _req(i: int) -> launch.EndpointRequest:
    return launch.EndpointRequest(args={"x": i}, request_id=str(i), return_pickled=False)


@pytest.mark.timeout(900)
def test_lost_ray_cluster_is_restarted_and_no_task_is_lost(
    local_ray_server: ServerHandle, record_property: Callable[[str, object], None]
) -> None:
    server = local_ray_server
    client = client_for(server)
    bundle = client.create_model_bundle("slow-double", ENV, predict_fn_or_cls=make_double(0.2), requirements=[])
    ep = client.create_model_endpoint(
        "ray-loss", bundle, **SMALL, min_workers=1, max_workers=1, per_worker=2, endpoint_type="async"
    )
    wait_status(ep, "READY", timeout=ENDPOINT_READY_S)
    endpoint_id = ep.model_endpoint.endpoint_id
    before = ep.predict_batch([_req(i) for i in range(200)])  # ~20 s of work: some is running at the kill
    wait_for(lambda: state_counts(server, endpoint_id).get("SUCCESS", 0) >= 5, 120, "some tasks to finish")

    killed = gcs_pid(server)
    os.kill(killed, signal.SIGKILL)
    at_kill = state_counts(server, endpoint_id)

    def unreachable() -> str | None:
        ep.status()
        reason = ep.model_endpoint.status_reason
        return reason if "Ray cluster unreachable" in reason else None

    reason = wait_for(unreachable, 60, "the endpoint to report the lost cluster", interval=0.1)
    during = ep.predict_batch([_req(i) for i in range(200, 240)])  # acknowledged while Ray is down
    assert ep.status() != "READY"

    wait_status(ep, "READY", timeout=ENDPOINT_READY_S)
    assert gcs_pid(server) != killed  # a new local Ray
    responses = {
        **wait_batch(before, 300, "the tasks queued before the loss"),
        **wait_batch(during, 300, "the tasks queued during the loss"),
    }
    acknowledged = len(before.request_ids) + len(during.request_ids)
    finished = sum(1 for r in responses.values() if r.status == "SUCCESS")
    wrong = {rid: r for rid, r in responses.items() if r.status != "SUCCESS" or r.result != json.dumps(int(rid) * 2)}
    [(max_attempts,)] = sqlite_rows(server, "SELECT max(attempts) FROM tasks WHERE endpoint_id = ?", (endpoint_id,))
    print(
        f"\n[ray-loss] states at the kill: {at_kill}; reason seen: {reason!r}; acknowledged {acknowledged}, "
        f"finished {finished}, lost {acknowledged - finished}; max attempts {max_attempts}"
    )
    record_property("acknowledged", acknowledged)
    record_property("finished", finished)
    assert not wrong, list(wrong.items())[:5]
    assert state_counts(server, endpoint_id) == {"SUCCESS": acknowledged}
    # With 2 attempts allowed, a task whose call failed with the cluster and was not given its
    # attempt back would have been failed on its next failure; none needed a second attempt.
    assert max_attempts == 1

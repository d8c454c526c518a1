"""A real Prometheus (Debian's `prometheus` binary) on loopback for tests: it scrapes the given
targets every second into a throwaway storage folder and answers PromQL over its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.server_process import free_port, stop_process, wait_for_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@dataclass
class Prometheus:
    proc: subprocess.Popen
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(address, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The query's one value; None while it has none."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_value(self, promql: str, wanted: float, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.value(promql)
            if seen == wanted:
                return seen
            time.sleep(0.5)
        raise AssertionError(f"{promql} = {seen}, not {wanted}, after {timeout:g} s")

    def stop(self) -> None:
        stop_process(self.proc)


def start_prometheus(folder: Path, targets: list[str]) -> Prometheus:
    """Prometheus scraping `targets` (host:port, path /metrics) every second."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: launch\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n"
    )
    port = free_port()
    log = open(folder / "prometheus.log", "ab")  # noqa: SIM115 - the child holds it
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    wait_for_port(port, timeout=30, proc=proc)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, proc, timeout=60)
    return Prometheus(proc=proc, url=url)


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Prometheus listens before it can answer queries (503 while its storage opens): wait for
    its readiness endpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass  # 503 (urllib's HTTPError is an OSError) or not answering yet
        time.sleep(0.2)
    raise RuntimeError(f"prometheus at {url} was not ready after {timeout:g} s")

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
    # Prometheus text on http://<this>/metrics (docs/metrics.md); "off" serves none. Loopback by
    # default: the figures name every endpoint and owner.
    metrics_bind: str = field(default_factory=lambda: _env("METRICS_BIND", "127.0.0.1:9464"))
    # LAUNCH_METRICS=0: no figures at all: replicas count nothing, and there is no metrics port
    # and no live endpoint figures (the switch a metrics-overhead measurement compares against).
    metrics: bool = field(default_factory=lambda: _env("METRICS", "1") not in ("0", "false", "no", "off"))
    # Clients that may follow runtime logs at once on this server (docs/runtime-logs.md), 1 to 1024.
    log_followers_max: int = field(default_factory=lambda: int(_env("LOG_FOLLOWERS_MAX", "64")))
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", ""))
    # Bounds on one database step, so an outage answers UNAVAILABLE in bounded time (store/db.py
    # DbTimeouts): connecting (PostgreSQL), one statement (PostgreSQL statement_timeout; SQLite's
    # busy timeout) and the wait for a free pooled connection.
    db_connect_timeout_s: float = field(default_factory=lambda: float(_env("DB_CONNECT_TIMEOUT_S", "5")))
    db_statement_timeout_s: float = field(default_factory=lambda: float(_env("DB_STATEMENT_TIMEOUT_S", "30")))
    db_pool_timeout_s: float = field(default_factory=lambda: float(_env("DB_POOL_TIMEOUT_S", "10")))
    storage_url: str = field(default_factory=lambda: _env("STORAGE_URL", ""))
    s3_endpoint_url: str | None = field(default_factory=lambda: _env("S3_ENDPOINT_URL", "") or None)
    s3_region: str | None = field(default_factory=lambda: _env("S3_REGION", "") or None)
    readable_prefixes: tuple[str, ...] = field(
        default_factory=lambda: tuple(p for p in _env("READABLE_PREFIXES", "").split(",") if p)
    )
    max_upload_bytes: int = field(default_factory=lambda: int(_env("MAX_UPLOAD_BYTES", str(4 << 30))))
    auth_cache_seconds: float = field(default_factory=lambda: float(_env("AUTH_CACHE_SECONDS", "2")))
    # An unknown key id (or a revoked key) is remembered this long, so repeating it costs no query.
    auth_unknown_key_cache_s: float = field(default_factory=lambda: float(_env("AUTH_UNKNOWN_KEY_CACHE_S", "30")))
    ray_address: str = field(default_factory=lambda: _env("RAY_ADDRESS", ""))
    serving: bool = field(default_factory=lambda: _env("SERVING", "1") not in ("0", "false", "no"))
    # Ray Serve application names are "<prefix>-<endpoint id>"; a reconciler only ever touches
    # applications with its own prefix, so servers with different databases can share a cluster.
    serve_app_prefix: str = field(default_factory=lambda: _env("SERVE_APP_PREFIX", "launch"))
    ray_num_cpus: int = field(default_factory=lambda: int(_env("RAY_NUM_CPUS", "16")))
    # How long the local Ray head (serving/ray_head.py) may take to come up before a retry.
    ray_start_timeout_s: float = field(default_factory=lambda: float(_env("RAY_START_TIMEOUT_S", "120")))
    throughput_optimized: bool = field(
        default_factory=lambda: _env("SERVE_THROUGHPUT_OPTIMIZED", "1") not in ("0", "false", "no")
    )
    # Serve's default of 5 queues requests at the handle and backs off (RAY.md); the autoscaler
    # still aims for per_worker requests per replica.
    max_ongoing_requests: int = field(default_factory=lambda: int(_env("MAX_ONGOING_REQUESTS", "100")))
    autoscale_metrics_interval_s: float = field(default_factory=lambda: float(_env("AUTOSCALE_METRICS_S", "0.5")))
    autoscale_look_back_s: float = field(default_factory=lambda: float(_env("AUTOSCALE_LOOK_BACK_S", "2")))
    upscale_delay_s: float = field(default_factory=lambda: float(_env("UPSCALE_DELAY_S", "0.5")))
    downscale_delay_s: float = field(default_factory=lambda: float(_env("DOWNSCALE_DELAY_S", "5")))
    downscale_to_zero_delay_s: float = field(default_factory=lambda: float(_env("DOWNSCALE_TO_ZERO_DELAY_S", "10")))
    reconcile_interval_s: float = field(default_factory=lambda: float(_env("RECONCILE_INTERVAL_S", "1")))
    converging_interval_s: float = field(default_factory=lambda: float(_env("CONVERGING_INTERVAL_S", "0.2")))
    # Submissions that find a free call slot start at once (written STARTED under this server's
    # lease) instead of waiting for the dispatcher to claim them.
    task_fast_path: bool = field(default_factory=lambda: _env("TASK_FAST_PATH", "1") not in ("0", "false", "no"))
    # A watched single task (CreateAndWatchTask) that starts at once may wait this long for its
    # replica's answer before its row is written: answered in time, it is written once, finished.
    task_hold_ms: float = field(default_factory=lambda: float(_env("TASK_HOLD_MS", "10")))
    task_lease_s: float = field(default_factory=lambda: float(_env("TASK_LEASE_S", "60")))
    task_max_attempts: int = field(default_factory=lambda: int(_env("TASK_MAX_ATTEMPTS", "3")))
    task_group_max: int = field(default_factory=lambda: int(_env("TASK_GROUP_MAX", "64")))
    result_retention_s: float = field(default_factory=lambda: float(_env("RESULT_RETENTION_S", str(7 * 86400))))
    # Storage no row owns (storage/sweeper.py): sync pickled results, batch chunk files and batch
    # results, and writes a killed server left half-done, removed after these lifetimes by a
    # bounded sweep every storage_sweep_interval_s.
    sync_result_retention_s: float = field(default_factory=lambda: float(_env("SYNC_RESULT_RETENTION_S", "86400")))
    batch_artifact_retention_s: float = field(
        default_factory=lambda: float(_env("BATCH_ARTIFACT_RETENTION_S", str(7 * 86400)))
    )
    partial_upload_retention_s: float = field(
        default_factory=lambda: float(_env("PARTIAL_UPLOAD_RETENTION_S", "86400"))
    )
    storage_sweep_interval_s: float = field(default_factory=lambda: float(_env("STORAGE_SWEEP_INTERVAL_S", "60")))
    storage_sweep_max_deletes: int = field(default_factory=lambda: int(_env("STORAGE_SWEEP_MAX_DELETES", "1000")))
    callback_max_attempts: int = field(default_factory=lambda: int(_env("CALLBACK_MAX_ATTEMPTS", "6")))
    callback_base_delay_s: float = field(default_factory=lambda: float(_env("CALLBACK_BASE_DELAY_S", "1")))
    # Where callbacks may go (task_queue/callback_targets.py): CIDRs, `public`, `loopback`; empty is
    # `public`, plus `loopback` when the server is bound to a loopback address.
    callback_networks: str = field(default_factory=lambda: _env("CALLBACK_NETWORKS", ""))
    callback_deadline_s: float = field(default_factory=lambda: float(_env("CALLBACK_DEADLINE_S", "10")))
    callback_concurrency: int = field(default_factory=lambda: int(_env("CALLBACK_CONCURRENCY", "32")))
    allow_local_file_urls: bool = field(
        default_factory=lambda: _env("ALLOW_LOCAL_FILE_URLS", "0") in ("1", "true", "yes")
    )
    # The direct route (docs/serving.md): replicas answer InferenceService on their own port and
    # the SDK sends sync predicts there in one hop. The secret signs the route tokens replicas
    # accept; unset, it is made once and kept in the database, so servers sharing one share it.
    direct_route: bool = field(default_factory=lambda: _env("DIRECT_ROUTE", "1") not in ("0", "false", "no"))
    direct_host: str = field(default_factory=lambda: _env("DIRECT_HOST", ""))
    route_secret: str = field(default_factory=lambda: _env("ROUTE_SECRET", ""))
    route_token_ttl_s: float = field(default_factory=lambda: float(_env("ROUTE_TOKEN_TTL_S", "300")))
    route_refresh_s: float = field(default_factory=lambda: float(_env("ROUTE_REFRESH_S", "2")))
    # How often the servers publish lately revoked keys to the replicas (their route tokens stop).
    revoked_keys_poll_s: float = field(default_factory=lambda: float(_env("REVOKED_KEYS_POLL_S", "1")))
    # TLS on replica ports (wire/replica_tls.py): off by default, where replicas listen on
    # loopback; turn it on when replicas run on other nodes. The material is made once per
    # database and filled in by the serving layer.
    replica_tls: bool = field(default_factory=lambda: _env("REPLICA_TLS", "0") in ("1", "true", "yes"))
    replica_tls_ca_pem: str = ""
    replica_tls_cert_pem: str = ""
    replica_tls_key_pem: str = ""
    dev_key_file: Path | None = None

    def resolved(self) -> Settings:
        """Fills the defaults that depend on data_dir and creates the directory, owner-only: it
        holds the database (with the route secret), the dev key and the storage."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'launch.db'}"
        if not self.storage_url:
            self.storage_url = (self.data_dir / "storage").as_uri()
        if self.dev_key_file is None:
            self.dev_key_file = self.data_dir / "dev_api_key"
        return self

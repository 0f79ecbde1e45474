"""The one typed settings object, read once at start-up from the environment (prefix-free names, `.env` allowed)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from grader.secret_key import MIN_SECRET_KEY_BYTES, load_or_create_secret_key
from sandbox.runner import GiB, KiB, MiB, SandboxLimits

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: str = "development"  # "development", "test" or "production"
    # Signs sessions, results and badges; at least 32 bytes. Unset: generated once into DATA_DIR/secret_key (0600).
    secret_key: str = ""

    # Store and broker. Empty means the embedded defaults (SQLite file, SQLite-backed kombu transport).
    database_url: str = ""
    broker_url: str = ""
    data_dir: Path = PROJECT_ROOT / "var"  # embedded database, broker files, prepared datasets

    # Sandbox
    sandbox_backend: str = "auto"  # "auto" (docker, else bwrap), "docker", "bwrap", "unsafe-subprocess"
    sandbox_dir: Path = PROJECT_ROOT / "var" / "sandbox"  # root filesystem, wheels, job directories
    sandbox_image: str = "cnn-grader-sandbox:auto"  # ":auto" = the image of the current kit + harnesses (content-hash tag)
    sandbox_memory_bytes: int = 1 * GiB  # memory = memory+swap
    sandbox_cpus: float = 1.0  # CPU quota in cores
    sandbox_pids: int = 64  # processes and threads per job
    sandbox_output_bytes: int = 32 * MiB  # cap of the result file
    sandbox_progress_bytes: int = 1 * MiB  # cap of the progress stream
    sandbox_tmpfs_bytes: int = 64 * MiB  # size of /tmp inside a job
    sandbox_nofile: int = 256  # open files per process
    sandbox_fsize_bytes: int = 64 * MiB  # largest file a job may write
    sandbox_threads: int = 1  # BLAS / OpenMP threads inside a correctness job
    sandbox_log_tail_bytes: int = 8 * KiB  # how much of a job's stdout+stderr comes back for diagnostics
    sandbox_cpu_shares: int = 1024  # CPU weight of correctness jobs (docker --cpu-shares; 1024 = normal)
    sandbox_container_log_bytes: int = 256 * KiB  # the engine's log file per container (json-file, one file)
    sandbox_engine_timeout_seconds: float = 10.0  # one Docker API call; longer is an infrastructure fault
    sandbox_orphan_age_seconds: float = 2 * 3600.0  # another host's job container older than this is an orphan
    sandbox_warm_containers: int = 1  # correctness containers a worker process keeps started ahead (one job each)
    correctness_wall_seconds: float = 60.0  # whole correctness stage, inside the sandbox
    training_wall_seconds: float = 45 * 60.0  # hard kill of a training job (budget + margin)
    training_budget_seconds: float = 30 * 60.0  # projected training time above which the run stops early
    training_memory_bytes: int = 4 * GiB  # memory of a training job
    training_cpus: float = 2.0  # CPU quota of a training job in cores
    training_cpu_shares: int = 64  # CPU weight of training jobs, 1/16 of a correctness job's: feedback takes the cores first
    # ... against the whole host, not only the other containers: the grading side of feedback (worker, engine,
    # database, API) runs outside the containers and must take the cores first too (sandbox/docker_backend.py)
    training_cpu_shares_host_wide: bool = True

    # CIFAR-10
    cifar10_source: Path = PROJECT_ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
    cifar10_cache_dir: Path = PROJECT_ROOT / "var" / "datasets" / "cifar10"

    # Service
    api_base_url: str = "http://127.0.0.1:8000"
    submission_max_bytes: int = 256 * 1024  # largest accepted spatial.py
    result_reuse: bool = True  # identical resubmissions reuse a finished result
    # Queueing. A run's lease is renewed by its worker's heartbeat; the sweep re-queues expired ones.
    broker_visibility_timeout_seconds: float = 3 * 3600.0  # longer than the longest job (training_wall_seconds)
    run_lease_seconds: float = 90.0  # a running run whose worker stopped renewing for this long is re-queued
    run_heartbeat_seconds: float = 15.0  # how often a worker renews the lease of its running run
    run_requeue_queued_seconds: float = 600.0  # a queued run not started for this long is published again
    run_max_attempts: int = 3  # attempts (worker lost, infrastructure fault) before a run ends as "error"
    sweep_interval_seconds: float = 20.0  # period of the stuck-run sweep (also finds runs a lost broker dropped)
    # Infrastructure faults are never grades: the run waits, retried with doubling back-off, for up to this long.
    infrastructure_retry_seconds: float = 6 * 3600.0
    infrastructure_backoff_seconds: float = 10.0  # first wait after a fault; doubles each time
    infrastructure_backoff_max_seconds: float = 600.0  # longest single wait
    broker_grace_seconds: float = 15.0  # a queued run younger than this may not have reached the broker yet
    training_cpu_minutes_per_day: float = 120.0  # default per-student daily training ration (the spec may override)
    submissions_per_day: int = 50  # default per-student daily submission limit (the assignment may override)
    worker_concurrency: int = 1  # grading processes per worker and queue; used for queue-time estimates
    readyz_check_sandbox: bool = True  # off where the API host has no sandbox engine (compose: the worker has it)

    # Accounts (grader/throttle.py). Failed password logins are counted per account and per client address in a
    # moving window, in Redis when BROKER_URL is Redis and in the database otherwise.
    login_failures_per_account: int = 10  # failed logins of one email within the window, then 429
    login_failures_per_client: int = 10  # failed logins from one client address (IPv6: its /64) within the window
    login_failure_window_seconds: int = 15 * 60
    # Tokens issued for a password (POST /api/v1/auth/token) expire; `grader admin issue-token` sets its own expiry.
    api_token_login_ttl_seconds: int = 30 * 24 * 3600  # 30 days
    throttle_max_rows: int = 100_000  # cap of the database-held throttle table (expired rows are pruned first)
    # Comma-separated addresses or networks (CIDR) of reverse proxies; X-Forwarded-For is believed only from them.
    trusted_proxies: str = ""
    health_details_public: bool = False  # /metrics and /readyz's per-check details for anyone, not only admins
    request_max_bytes: int = 1 * MiB  # request bodies, except uploads (see api/body_limit.py)
    live_streams_per_user: int = 3  # open progress streams (Server-Sent Events) per user

    @model_validator(mode="after")
    def _signing_key(self) -> "Settings":
        """No default key anywhere: an unset key is generated (and kept) per data directory, a short one refused."""
        if not self.secret_key:
            try:
                self.secret_key = load_or_create_secret_key(self.data_dir)
            except OSError as error:
                raise ValueError(f"SECRET_KEY is unset and no key could be kept in DATA_DIR ({error}); set SECRET_KEY "
                                 "or point DATA_DIR at a writable directory") from None
        if len(self.secret_key.encode()) < MIN_SECRET_KEY_BYTES:
            raise ValueError(f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes of random text (it is "
                             f"{len(self.secret_key.encode())}); e.g. python -c 'import secrets; "
                             "print(secrets.token_urlsafe(48))', or leave it unset to have one generated")
        return self

    def sandbox_limits(self, **overrides: float) -> SandboxLimits:
        """Default correctness-job limits, with per-assignment overrides (field names of SandboxLimits)."""
        base = dict(
            memory_bytes=self.sandbox_memory_bytes, cpus=self.sandbox_cpus, pids=self.sandbox_pids,
            wall_seconds=self.correctness_wall_seconds, output_bytes=self.sandbox_output_bytes,
            progress_bytes=self.sandbox_progress_bytes, tmpfs_bytes=self.sandbox_tmpfs_bytes,
            nofile=self.sandbox_nofile, fsize_bytes=self.sandbox_fsize_bytes, threads=self.sandbox_threads,
            log_tail_bytes=self.sandbox_log_tail_bytes, cpu_shares=self.sandbox_cpu_shares,
        )
        base.update(overrides)
        return SandboxLimits(**base)


@lru_cache
def get_settings() -> Settings:
    return Settings()

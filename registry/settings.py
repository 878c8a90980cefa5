"""One settings object for every shell (CLI, REST, flows): env vars with prefix PEMREG_."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.catalog.location import DEFAULT_HOME, DbLimits, database_url, default_principal

_DB = DbLimits()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PEMREG_", extra="ignore")

    home: Path = DEFAULT_HOME
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<home>/registry.db"
    )
    artifact_store: str | None = Field(default=None, description="file:///path or s3://bucket/prefix")
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = Field(default=None, description="else the standard AWS chain")
    s3_secret_access_key: str | None = None
    principal: str = Field(default_factory=default_principal, description="recorded as created_by / actor")
    # RMS cosine above which a sum is flagged (Naive LoRA summation: loss grows with it).
    interference_threshold: float = 0.3
    # Relative distance of `linear` from the exact weighted delta sum above which a linear spec warns.
    linear_cross_term_threshold: float = 0.25
    max_upload_bytes: int = 2 * 1024**3
    # Without PREFECT_API_URL, the CLI keeps a Prefect server warm on this port (started on demand);
    # "ephemeral" runs each flow on Prefect's in-process server instead (~15-20 s start-up here).
    prefect_mode: Literal["local-server", "ephemeral"] = "local-server"
    local_prefect_port: int = 4213
    recompose_interval_seconds: int = 600
    # Web catalog at `/`: signs its session cookies with this (else a secret generated into `home`);
    # public_read lets anyone read the web catalog without signing in (REST still needs a key).
    session_secret: str | None = Field(default=None, repr=False)
    public_read: bool = False
    session_max_age_seconds: int = 12 * 3600
    # Secure cookies: automatic when the request is https; force it behind a TLS-terminating proxy.
    session_cookie_secure: bool = False
    prefect_ui_url: str | None = Field(default=None, description="links a composition to its flow run")
    # Catalog timeouts (seconds): a down or frozen database answers 503 within these bounds.
    db_connect_timeout_seconds: float = Field(default=_DB.connect, gt=0, le=300)
    db_statement_timeout_seconds: float = Field(default=_DB.statement, gt=0, le=3600)
    db_pool_timeout_seconds: float = Field(default=_DB.pool, gt=0, le=300)
    db_sqlite_busy_timeout_seconds: float = Field(default=_DB.sqlite_busy, gt=0, le=3600)
    # PostgreSQL sessions each process keeps for writes and background work, may open beyond them, and
    # keeps for catalog reads (registry.catalog.location.DbLimits).
    db_pool_size: int = Field(default=_DB.pool_size, ge=1, le=1000)
    db_pool_max_overflow: int = Field(default=_DB.pool_max_overflow, ge=0, le=1000)
    db_read_pool_size: int = Field(default=_DB.read_pool_size, ge=1, le=1000)
    # Where REST callers (and runs they stored) may name sources besides the artifact store: adapter
    # and base-model folders, evaluation datasets and calibration sets (comma-separated local folders
    # and s3://bucket/prefix entries). `dataset_roots` is the older name, still read and folded in.
    # The CLI on the server's own machine acts as the local user and may read any local path.
    source_roots: str = ""
    dataset_roots: str = ""
    # Hub ids (e.g. `gpt2`) as base-model sources of REST callers: off, so no request makes the server
    # connect to a model hub unless the operator says so.
    allow_hub_sources: bool = False
    # Run lifecycle: a working run refreshes its heartbeat this often; a pending/running run silent for
    # `run_stale_after_seconds` is reconciled (failed, or retried where its spec asks). Defaults keep a
    # stuck row under 2 minutes with the worker's periodic reconcile.
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    run_stale_after_seconds: float = Field(default=60.0, gt=0)
    reconcile_interval_seconds: float = Field(default=30.0, gt=0)
    # The Prefect global concurrency limit `gpu` around compose and evaluate steps: `auto` on CUDA only,
    # `always` on any device (caps CPU-heavy work across workers too), `off` never.
    gpu_limit: Literal["auto", "always", "off"] = "auto"
    # Runs on the embedded default execute in a warm process (the server's, or the local runner the CLI
    # starts on first use) on a fixed pool of `compose_workers` threads; at most `compose_queue_limit`
    # more wait (beyond: 503 / "busy"). The local runner exits after `runner_idle_seconds` without work;
    # `warm_runner=false` runs each `pemreg compose` in its own process instead.
    compose_workers: int = Field(default=2, ge=1, le=64)
    compose_queue_limit: int = Field(default=64, ge=0, le=100_000)
    warm_runner: bool = True
    runner_idle_seconds: float = Field(default=900.0, gt=0)
    # The evaluator's prefix cache (registry/evaluation/prefix.py): the base's hidden states below the
    # layers an adapter changes, kept per held-out document across evaluations of a warm process, in at
    # most this many MiB (least recently used documents dropped: costs a recomputation, never a result).
    # 0: off, every evaluation runs the full forward.
    eval_prefix_cache_mb: int = Field(default=256, ge=0)
    # `pemreg gc` leaves store objects younger than this alone, so a run still uploading is never touched.
    gc_grace_seconds: float = Field(default=3600.0, ge=0)
    # Webhooks (registry.service.events): target hosts must be listed here (`host` or `host:port`,
    # comma-separated, matched exactly; loopback and private addresses only when listed as addresses).
    webhook_allowed_hosts: str = ""
    webhook_retry_hours: float = Field(default=24.0, gt=0, le=24 * 30)  # then the delivery is dead
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)  # one attempt, connect to last byte
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)  # first retry after 1-2x this, doubling
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_secret_grace_hours: float = Field(default=24.0, ge=0)  # a rotated-out secret still signs
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)  # an idle deliverer looks this often
    webhook_concurrency: int = Field(default=16, ge=1, le=256)  # attempts in flight per deliverer
    webhook_history_days: float = Field(default=30.0, gt=0)  # finished deliveries kept this long
    # GET /metrics without a key (else an admin key is needed).
    metrics_public: bool = False
    # Namespaces created from now on (explicitly, or by a first write into them) are `internal` (every
    # signed-in principal reads them) unless this says `private` (grantees only; a writer that creates
    # one by writing into it becomes its maintainer).
    default_visibility: Literal["internal", "private"] = "internal"
    # Single sign-on (OIDC): bearer JWTs signed by this issuer (keys from its discovery document) are
    # principals `user:<claim>`; the web page signs in through it (authorization code + PKCE).
    oidc_issuer: str | None = None
    oidc_audience: str | None = Field(default=None, description="expected `aud`; default oidc_client_id")
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = Field(default=None, repr=False)
    oidc_groups_claim: str = "groups"
    oidc_user_claim: str = "sub"
    oidc_admin_groups: str = Field(default="", description="comma-separated groups that are global admins")
    # The global role of every other SSO user: what it may do in unowned namespaces (and creating them).
    oidc_default_role: Literal["reader", "writer"] = "reader"
    oidc_scopes: str = "openid profile email"
    oidc_leeway_seconds: float = Field(default=60.0, ge=0, le=300)  # clock skew allowed on exp / nbf / iat
    oidc_http_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # An unknown `kid` refetches the issuer's keys at most this often (a forged kid cannot make the
    # server hammer the issuer); known keys are kept this long before a refresh.
    oidc_jwks_min_refresh_seconds: float = Field(default=30.0, ge=0, le=3600)
    oidc_jwks_max_age_seconds: float = Field(default=3600.0, gt=0, le=86400)
    oidc_redirect_url: str | None = Field(default=None, description="else <this server>/signin/oidc/callback")
    # `pemreg worker` re-reads the stored `schedule:` specs this often and updates their deployments.
    schedule_sync_seconds: float = Field(default=15.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _stale_after_outlasts_heartbeats(self) -> Settings:
        # A live run must never look lost: at least two beats fit in the stale-after window.
        if self.run_stale_after_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                f"run_stale_after_seconds ({self.run_stale_after_seconds:g}) must be at least twice "
                f"heartbeat_seconds ({self.heartbeat_seconds:g})"
            )
        return self

    @property
    def admin_groups(self) -> frozenset[str]:
        return frozenset(g.strip() for g in self.oidc_admin_groups.split(",") if g.strip())

    @property
    def resolved_oidc_audience(self) -> str | None:
        return self.oidc_audience or self.oidc_client_id

    @property
    def db_limits(self) -> DbLimits:
        return DbLimits(
            connect=self.db_connect_timeout_seconds,
            statement=self.db_statement_timeout_seconds,
            pool=self.db_pool_timeout_seconds,
            sqlite_busy=self.db_sqlite_busy_timeout_seconds,
            pool_size=self.db_pool_size,
            pool_max_overflow=self.db_pool_max_overflow,
            read_pool_size=self.db_read_pool_size,
        )

    @property
    def resolved_database_url(self) -> str:
        return database_url(self.home, self.database_url)

    @property
    def resolved_artifact_store(self) -> str:
        return self.artifact_store or (self.home / "artifacts").as_uri()


@lru_cache
def get_settings() -> Settings:
    return Settings()

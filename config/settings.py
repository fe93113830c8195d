"""One settings class for every process; defaults point at the local stack that infra/ starts."""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigurationError(RuntimeError):
    """A process cannot start with these settings; the message names the setting to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMMERCE_", env_file=".env", extra="ignore")

    environment: Literal["local", "production"] = "local"
    # Prefix of every topic, consumer group and transactional id of this deployment.
    namespace: str = Field("commerce", pattern=r"^[A-Za-z0-9_-]+$")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_partitions: int = Field(6, ge=1, le=1000)
    kafka_replication_factor: int = Field(1, ge=1)
    kafka_min_insync_replicas: int = Field(1, ge=1)

    users_database_url: str = "postgresql://users@127.0.0.1:5432/users"
    catalog_database_url: str = "postgresql://catalog@127.0.0.1:5432/catalog"
    orders_database_url: str = "postgresql://orders@127.0.0.1:5432/orders"
    payments_database_url: str = "postgresql://payments@127.0.0.1:5432/payments"
    # Connections one process keeps to one database at most, shared by all it does there (a gateway's
    # command and query sides, a projector process's projections; a query side's change-notice
    # listener has one more). `./run up` runs 13 such processes, and PostgreSQL's connections are few:
    # a query or a batch takes a millisecond or so, and a process keeps only a few in flight at once.
    database_pool_size: int = Field(3, ge=1)

    elasticsearch_url: str = "http://127.0.0.1:9200"

    # Ed25519 PEM files. Local mode creates a pair on first use; production must provide them.
    jwt_private_key_file: Path = Path(".local/keys/jwt-ed25519.pem")
    jwt_public_key_file: Path = Path(".local/keys/jwt-ed25519.pub.pem")
    # The pair that signs the platform's own processes' tokens (role "service": the order saga, the
    # operator's commands). Kept apart from the users key so that a host running the saga cannot sign a
    # customer's or an admin's token, and the users service cannot sign a service's.
    service_private_key_file: Path = Path(".local/keys/service-ed25519.pem")
    service_public_key_file: Path = Path(".local/keys/service-ed25519.pub.pem")
    # The key that signs the command side's checkpoints (derived state kept in Kafka): a checkpoint
    # that does not carry its signature is ignored. Local mode creates one on first use.
    checkpoint_key_file: Path = Path(".local/keys/checkpoint.key")
    # A partition's writer checkpoints its store after this many records since the last checkpoint.
    checkpoint_every_records: int = Field(20_000, ge=1)
    # Where a command-side instance keeps its partitions' stores (derived data: a folder per instance).
    state_dir: Path = Path(".local/state")
    # Aggregates a partition's writer keeps in memory, besides those changed since its last flush.
    state_cache_aggregates: int = Field(4_000, ge=1)
    jwt_issuer: str = "commerce-users"
    # The `iss` of service tokens: it names the key that signed them (auth/tokens.py, TokenVerifier).
    service_issuer: str = "commerce-services"
    jwt_audience: str = "commerce"
    jwt_ttl_seconds: int = Field(3600, ge=60)
    # Every process that verifies tokens follows the users topic for role changes and revoked sessions
    # (auth/revocations.py). While it has not confirmed within this time that it has read the topic to
    # its end (Kafka out of its reach), it refuses admin tokens older than this: a withdrawn admin keeps
    # the role at most this long, whatever happens to Kafka.
    revocations_stale_after_seconds: float = Field(30.0, gt=0)
    # How long a starting service waits for that view to read the users topic before it serves.
    revocations_start_wait_seconds: float = Field(10.0, ge=0)

    # How this instance is reached by its peers; other instances forward commands here.
    instance_url: str = ""
    # A command that cannot reach Kafka within this time answers 503.
    command_timeout_seconds: float = Field(5.0, gt=0)
    # Most records a projector applies in one transaction (or one bulk request).
    projector_max_batch: int = Field(5000, ge=1)
    # Where a projector process serves Prometheus metrics (parked partitions, dead letters, lag);
    # port 0: it serves none. Several projector processes on one host need a port each.
    projector_metrics_port: int = Field(0, ge=0, le=65535)
    projector_metrics_host: str = "127.0.0.1"
    # A confirmed order not paid within this time expires, and its stock is released.
    order_payment_window_seconds: float = Field(1800.0, gt=0)
    # Where the order saga reaches the command sides it drives (any instance: it forwards to the owner).
    catalog_url: str = "http://127.0.0.1:8000"
    orders_url: str = "http://127.0.0.1:9000"
    payments_url: str = "http://127.0.0.1:6002"
    # How often the order saga looks for unpaid orders past their deadline.
    order_expiry_sweep_seconds: float = Field(5.0, gt=0)
    # How long the saga retries one step whose command side is down or busy (5xx, 429, no answer)
    # before the step goes to its dead letters; other orders go on meanwhile.
    saga_step_retry_seconds: float = Field(60.0, gt=0)
    # Most records the saga has in flight at once (it pauses its partitions above that).
    saga_max_in_flight: int = Field(1000, ge=1)
    # How often the saga carries out the operator's decisions on its dead letters.
    saga_dead_letter_poll_seconds: float = Field(2.0, gt=0)
    # What one customer may hold at once, so that no account ties up the stock for the payment window:
    # open orders (placed, not yet paid or ended: their units are held) and the units in them. 1,000
    # units is one cart line at its largest; POST /orders over either answers 409.
    max_open_orders_per_customer: int = Field(5, ge=1)
    max_held_units_per_customer: int = Field(1_000, ge=1)
    # The payments service's gateway (README, "Payments"): `stripe` (or the API at `stripe_api_base`, e.g.
    # stripe-mock) needs `stripe_secret_key`; `simulated` lets anyone pay with a test card, so it runs in
    # local mode only. Unnamed: Stripe when a secret key is set, else, in local mode only, the simulated one.
    payment_gateway: Literal["", "stripe", "simulated"] = ""
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_api_base: str = ""
    # The signing secret of the webhook endpoint (`POST /webhooks/stripe`); webhooks are refused without it.
    stripe_webhook_secret: str = ""
    # What Prometheus sends to scrape /metrics (`Authorization: Bearer <token>`); without one, /metrics
    # answers in local mode only.
    metrics_token: str = ""
    # Request bodies above this size are refused (413) before anything parses them.
    max_request_body_bytes: int = Field(1_048_576, ge=1024)
    # A query that waits for a consistency token gives up after this time.
    consistency_wait_seconds: float = Field(5.0, gt=0)
    # A query without a token waits at most this long for the writes its own process acknowledged
    # (then answers from the read model as it is); 0 turns that wait off.
    own_writes_wait_seconds: float = Field(2.0, ge=0)
    # Limits on callers of login and registration, shared by every instance through counters in the users
    # database (README, "Limits on callers"): failed logins per account, login attempts and registrations
    # per client address, each as attempts per window (seconds).
    login_failures_per_account: int = Field(10, ge=1)
    login_failures_window_seconds: int = Field(900, ge=1)
    login_attempts_per_address: int = Field(30, ge=1)
    login_attempts_window_seconds: int = Field(60, ge=1)
    registrations_per_address: int = Field(20, ge=1)
    registrations_window_seconds: int = Field(3600, ge=1)
    # A limit that cannot be checked within this time (PostgreSQL down) answers 503.
    rate_limit_timeout_seconds: float = Field(2.0, gt=0)
    # Peers whose `X-Forwarded-For` is believed (addresses or networks); everyone else's is ignored.
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    # Password hashes (argon2id) computed at once per process; a request that waits longer than the
    # wait for its turn answers 503.
    password_hashing_concurrency: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), ge=1)
    password_hashing_wait_seconds: float = Field(2.0, gt=0)
    # argon2id's parameters for new hashes: OWASP's Password Storage Cheat Sheet (19 MiB of memory, 2
    # iterations, 1 lane). A hash made with other parameters is made again at its next successful login.
    password_hash_memory_kib: int = Field(19_456, ge=8_192)
    password_hash_iterations: int = Field(2, ge=1)
    password_hash_lanes: int = Field(1, ge=1)
    # Traces (config/telemetry.py): sent over OTLP/HTTP to this collector (a base URL such as
    # http://127.0.0.1:4318; the standard OTEL_EXPORTER_OTLP_ENDPOINT works too), else appended as one JSON
    # line per span to `traces_file`, else off. Every process may share one file.
    otlp_endpoint: str = ""
    traces_file: Path | None = None
    # The traces file is renamed to `<file>.1` at this size (the one before is dropped): at most twice it.
    traces_file_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    # The share of user actions traced (a trace begun elsewhere keeps its caller's choice: a request with
    # a sampled `traceparent` is traced whatever this says). One in a hundred by default: tracing every
    # request cost `./run up` a third of its reads and commands (bench `platform`, telemetry on and off).
    traces_sample_ratio: float = Field(0.01, ge=0, le=1)
    # `json`: one object per line with the trace and correlation ids; `text`: for a human at a terminal.
    log_format: Literal["json", "text"] = "json"

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, proxies: list[str]) -> list[str]:
        """Only addresses and networks: `*` would believe anyone's X-Forwarded-For, and uvicorn silently
        ignores an entry it cannot parse; a ValueError here fails at start instead."""
        for proxy in proxies:
            ipaddress.ip_network(proxy)
        return proxies

    @model_validator(mode="after")
    def _issuers_apart(self) -> Settings:
        """A token's issuer picks the key it is checked with: the users' and the services' must differ."""
        if self.service_issuer == self.jwt_issuer:
            raise ValueError("COMMERCE_SERVICE_ISSUER must differ from COMMERCE_JWT_ISSUER")
        return self

    def chosen_payment_gateway(self) -> Literal["stripe", "simulated"]:
        """The gateway the payments service runs. Production never falls back to the simulated gateway:
        without a Stripe key, or with the simulated gateway named, the payments service does not start."""
        chosen = self.payment_gateway or (
            "stripe" if self.stripe_secret_key or self.environment == "production" else "simulated"
        )
        if chosen == "simulated" and self.environment == "production":
            raise ConfigurationError(
                "COMMERCE_PAYMENT_GATEWAY=simulated is refused in production (anyone could pay with a"
                " test card): use stripe, with COMMERCE_STRIPE_SECRET_KEY"
            )
        if chosen == "stripe" and not self.stripe_secret_key:
            raise ConfigurationError(
                "COMMERCE_STRIPE_SECRET_KEY is not set: in production the payments service never falls"
                " back to the simulated gateway"
                if self.environment == "production"
                else "COMMERCE_PAYMENT_GATEWAY=stripe needs COMMERCE_STRIPE_SECRET_KEY"
            )
        return chosen


@lru_cache
def get_settings() -> Settings:
    return Settings()

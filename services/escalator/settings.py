"""One frozen Settings object, read from the environment (prefix ``ESCALATOR_``) and built once in ``main``.

Every setting is listed by ``escalator --help`` and in docs/configuration.md (generated from this class by
``escalator config docs``). Credentials are ``SecretStr``: they are never printed or logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["NO_BROKER", "Settings"]

#: What every command that needs Kafka says when none is configured.
NO_BROKER = (
    "no Kafka broker configured: set ESCALATOR_BOOTSTRAP_SERVERS (or KAFKA_BOOTSTRAP_SERVERS), or use `make run`, "
    "which starts the embedded development broker"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCALATOR_", frozen=True, extra="ignore")

    # --- Kafka ---------------------------------------------------------------------------------------------
    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("ESCALATOR_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS", "bootstrap_servers"),
        description="Kafka bootstrap servers (host:port,...). Falls back to KAFKA_BOOTSTRAP_SERVERS. Unset: "
        "`make run` starts the embedded development broker.",
    )
    broker_flavour: Literal["kafka", "tansu"] = Field(
        default="kafka",
        description="kafka for Apache Kafka (and compatible services); tansu only for the embedded development "
        "broker, which switches on the workarounds in escalator.broker.tansu_compat. Set by the launcher.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism (with SASL_PLAINTEXT / SASL_SSL)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (secret).")
    ssl_cafile: Path | None = Field(default=None, description="CA bundle for SSL / SASL_SSL.")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    ssl_keyfile: Path | None = Field(default=None, description="Client private key (mutual TLS).")
    ssl_key_password: SecretStr | None = Field(default=None, description="Password of the client key (secret).")

    # --- identity and topics ---------------------------------------------------------------------------------
    app_id: str = Field(
        default="escalator",
        description="Application id: the consumer group, and the prefix of internal topics and changelogs.",
    )
    topic_input: str = Field(default="ticket-events", description="Input topic (ticket events, key = ticket id).")
    topic_escalations: str = Field(
        default="ticket-escalations", description="escalation.raised/resolved, incident.detected/updated/resolved."
    )
    topic_notifications: str = Field(default="ticket-notifications", description="notification.requested.")
    topic_dlq: str = Field(default="ticket-events.dlq", description="Dead-letter topic for unusable input records.")
    partitions: int = Field(default=4, ge=1, le=10_000, description="Partitions of the input and internal topics.")
    output_partitions: int = Field(default=4, ge=1, le=10_000, description="Partitions of the output topics.")
    replication_factor: int = Field(
        default=1, ge=1, le=7, description="Replication factor of created topics (use 3 on a production cluster)."
    )

    # --- policy, state, storage -------------------------------------------------------------------------------
    policy_file: Path = Field(default=Path("examples/policy.yaml"), description="The policy file (YAML).")
    policy_watch_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How often the worker looks at its policy file for an edit (0: never). An edited file applies "
        "to open tickets from the instant the worker read it (wall clock; `escalator policy publish` is the "
        "deterministic way).",
    )
    store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb", description="Table store: rocksdb (durable local state, via rocksdict) or memory."
    )
    data_dir: Path = Field(default=Path("var/escalator"), description="Local state directory (RocksDB tables).")
    rocksdb_block_cache_mib: int = Field(default=64, ge=8, description="RocksDB block cache per table, MiB.")
    rocksdb_write_buffer_mib: int = Field(default=16, ge=1, description="RocksDB write buffer size, MiB.")
    closed_retention_seconds: float = Field(
        default=30 * 86_400, ge=0, description="Closed tickets are purged from the table this long after closing."
    )
    max_event_bytes: int = Field(default=1_000_000, ge=1_000, description="Larger input records go to the DLQ.")
    dlq_max_bytes: int = Field(
        default=900_000,
        ge=10_000,
        description=(
            "Largest dead-letter record (key + value + headers). A bigger bad record is dead-lettered cut to fit "
            "(escalator-dlq-truncated says what was cut; the original stays in the input topic at the offset the "
            "record names): keep it below the producer's and the DLQ topic's message size limits (librdkafka and "
            "Kafka: ~1 MB)."
        ),
    )
    timeline_entries: int = Field(
        default=50,
        ge=0,
        le=500,
        description="Entries of each ticket's timeline (/tickets/{id}/timeline) kept with its state; 0: none.",
    )

    # --- timing -------------------------------------------------------------------------------------------------
    allowed_lateness_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Deadlines fire this long after their instant (outputs still carry the logical instant), so an "
        "event stamped before a deadline that arrives within this grace is applied first, as replay would.",
    )
    max_batch: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description="Most records the worker takes in one batch (consumed, applied, produced and committed together).",
    )
    max_batch_ms: int = Field(
        default=50,
        ge=1,
        le=10_000,
        description="Once caught up, batches are sized to take about this long, so that a due deadline waits at most "
        "about one batch; while catching up a backlog, batches take up to max_batch records.",
    )

    # --- consumer group -----------------------------------------------------------------------------------------
    session_timeout_seconds: float = Field(default=10.0, gt=0, description="Consumer group session timeout.")
    heartbeat_interval_seconds: float = Field(default=1.0, gt=0, description="Consumer heartbeat interval.")
    max_poll_interval_seconds: float = Field(
        default=300.0, gt=0, description="Longest a worker may take between two polls (recovery included)."
    )
    fetch_max_wait_ms: int = Field(
        default=100, ge=0, le=10_000, description="Longest a fetch waits for fetch_min_bytes of data."
    )
    fetch_min_bytes: int = Field(
        default=1,
        ge=1,
        le=10_000_000,
        description="A fetch answers once this much data is there (or after fetch_max_wait_ms): larger values mean "
        "fewer, fuller fetches and less broker load, at up to fetch_max_wait_ms more delay.",
    )
    linger_ms: int = Field(
        default=25,
        ge=0,
        le=1_000,
        description="How long the worker's producer gathers records into one produce request: fewer, larger requests "
        "load the broker less (measured: timer lateness p99 1062 ms with 5 ms, 52 ms with 25 ms, docs/benchmarks.md); "
        "outputs reach the broker up to this much later (their record time is when they were produced).",
    )
    compression: Literal["none", "lz4", "zstd", "snappy", "gzip"] = Field(
        default="none", description="Compression of every record the worker produces."
    )
    recovery_stall_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A worker that stays not-ready this long after a rebalance asks its consumer group to rebalance "
        "again (table recovery is retried); after 3 such attempts it exits so that its supervisor restarts it.",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3_600,
        description="On SIGTERM/SIGINT the worker finishes its batches in flight, commits, leaves the group and exits "
        "0 within this long; if it cannot (the broker is unreachable), it gives up on what is not delivered (the "
        "next owner processes that input again) and exits 4 when this time is up. Keep it below the supervisor's "
        "kill timeout (Kubernetes: terminationGracePeriodSeconds, 30 s by default).",
    )

    # --- notify -------------------------------------------------------------------------------------------------
    notify_routing_file: Path = Field(
        default=Path("examples/routing.yaml"), description="`escalator notify`: the routing file (YAML)."
    )
    notify_directory_file: Path = Field(
        default=Path("examples/directory.yaml"),
        description="`escalator notify`: the people/teams directory (addresses, quiet hours, time zones; YAML).",
    )
    notify_web_host: str = Field(default="127.0.0.1", description="Bind address of the relay's /healthz, /metrics.")
    notify_web_port: int = Field(default=6067, ge=0, le=65_535, description="Port of the relay's /healthz, /metrics.")
    notify_dlq_topic: str | None = Field(
        default=None,
        description="The relay's delivery dead-letter topic. Unset: <topic_notifications>.delivery-dlq.",
    )
    notify_data_dir: Path = Field(
        default=Path("var/notify"), description="The relay's local de-duplication store (RocksDB via rocksdict)."
    )
    notify_dedup_retention_seconds: float = Field(
        default=7 * 86_400, gt=0, description="How long a delivery is remembered against redelivered records."
    )
    notify_trigger_retention_seconds: float = Field(
        default=30 * 86_400,
        gt=0,
        description="How long the relay remembers where a PagerDuty trigger went, for its resolve: an escalation "
        "resolved later than this after its trigger is not resolved in PagerDuty.",
    )
    notify_max_attempts: int = Field(
        default=5, ge=1, le=100, description="Delivery attempts per message before it is dead-lettered."
    )
    notify_backoff_initial_seconds: float = Field(
        default=1.0, gt=0, description="Delay before the first retry; doubled each retry (full jitter)."
    )
    notify_backoff_max_seconds: float = Field(default=60.0, gt=0, description="Longest delay between two attempts.")
    notify_breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failures of one destination that open its circuit breaker."
    )
    notify_breaker_cooldown_seconds: float = Field(
        default=30.0, gt=0, description="How long an open breaker refuses sends before one half-open probe."
    )
    notify_http_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one delivery attempt.")
    notify_digest_window_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Per-recipient throttle: notifications for a destination within this window after a send are "
        "delivered together as one digest at the window's end (critical ones go at once; 0: no digests).",
    )
    notify_warning_max_age_seconds: float = Field(
        default=900.0,
        ge=0,
        description="An sla_warning older than this (from its fired_at) when it would be delivered is suppressed "
        "as stale (0: never).",
    )
    notify_webhook_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks signing secret (whsec_<base64>) of generic webhooks (secret)."
    )
    notify_slack_format: Literal["blocks", "text"] = Field(
        default="blocks", description="Slack payloads: Block Kit blocks (with a text fallback) or text only."
    )
    notify_pagerduty_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="PagerDuty Events API v2 endpoint."
    )
    notify_smtp_host: str | None = Field(default=None, description="SMTP server of e-mail notifications.")
    notify_smtp_port: int = Field(default=587, ge=1, le=65_535, description="SMTP port.")
    notify_smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection with STARTTLS.")
    notify_smtp_tls: bool = Field(default=False, description="Implicit TLS (SMTPS, usually port 465).")
    notify_smtp_username: str | None = Field(default=None, description="SMTP user name (AUTH).")
    notify_smtp_password: SecretStr | None = Field(default=None, description="SMTP password (secret).")
    notify_smtp_from: str = Field(default="escalator@localhost", description="From address of e-mails.")

    # --- web, logging -------------------------------------------------------------------------------------------
    web_host: str = Field(default="127.0.0.1", description="Bind address of the HTTP API and /metrics.")
    web_port: int = Field(default=6066, ge=0, le=65_535, description="Port of the HTTP API and /metrics.")
    web_advertised_host: str | None = Field(
        default=None,
        description="Host name other workers use to reach this one (routing of /tickets/{id} to the owner). "
        "Default: web_host, or this machine's name when web_host is 0.0.0.0.",
    )
    web_api_tokens: SecretStr | None = Field(
        default=None,
        description="Bearer tokens (comma-separated; secret) required for every worker endpoint but /healthz, /readyz "
        "and /metrics (/tickets/{id}, /policy). Unset: open -- keep the port on loopback or a private network then.",
    )
    web_metrics_tokens: SecretStr | None = Field(
        default=None,
        description="Bearer tokens (comma-separated; secret) required for /metrics of the worker, the relay and the "
        "gateway (an API token is accepted too). Unset: /metrics is open.",
    )
    web_tls_certfile: Path | None = Field(
        default=None,
        description="Certificate chain (PEM) of the HTTP port of the worker, the relay and the gateway: set, the port "
        "speaks HTTPS only (TLS 1.2+), and workers forward /tickets/{id} to each other over https.",
    )
    web_tls_keyfile: Path | None = Field(default=None, description="Private key (PEM) of web_tls_certfile.")
    web_tls_cafile: Path | None = Field(
        default=None,
        description="CA bundle a worker verifies other workers' certificates with when it forwards /tickets/{id} "
        "(default: the system's).",
    )
    log_format: Literal["text", "json"] = Field(default="text", description="Log format.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    debug_loggers: str = Field(
        default="", description="Comma-separated logger names logged at DEBUG whatever the level (diagnostics)."
    )

    # --- gateway ------------------------------------------------------------------------------------------------
    gateway_host: str = Field(default="127.0.0.1", description="Bind address of `escalator gateway` (webhooks in).")
    gateway_port: int = Field(default=8088, ge=0, le=65_535, description="Port of `escalator gateway`.")
    gateway_mapping_file: Path | None = Field(
        default=None,
        description="The gateway's vendor mapping file (YAML: priorities, statuses, fields per source). Unset: the "
        "packaged defaults (escalator/gateway/mappings.yaml).",
    )
    gateway_zendesk_secret: SecretStr | None = Field(
        default=None, description="Zendesk webhook signing secret (X-Zendesk-Webhook-Signature; secret)."
    )
    gateway_jira_secret: SecretStr | None = Field(
        default=None, description="Jira webhook secret (X-Hub-Signature: sha256=HMAC of the body; secret)."
    )
    gateway_servicenow_secret: SecretStr | None = Field(
        default=None, description="ServiceNow HMAC secret (X-Escalator-Signature and -Timestamp; secret)."
    )
    gateway_servicenow_token: SecretStr | None = Field(
        default=None, description="ServiceNow bearer token (Authorization: Bearer; secret)."
    )
    gateway_events_secret: SecretStr | None = Field(
        default=None, description="HMAC secret of POST /v1/events (X-Escalator-Signature and -Timestamp; secret)."
    )
    gateway_events_token: SecretStr | None = Field(
        default=None, description="Bearer token of POST /v1/events (Authorization: Bearer; secret)."
    )
    gateway_allow_unsigned: bool = Field(
        default=False,
        description="Accept requests of sources that have no secret or token configured (local development only; "
        "otherwise such a source answers 401 'not configured').",
    )
    gateway_timestamp_tolerance_seconds: float = Field(
        default=300.0, gt=0, description="Signed timestamps further than this from now are refused (replays)."
    )
    gateway_max_body_bytes: int = Field(
        default=1_000_000, ge=1_000, description="Larger request bodies are refused (413)."
    )
    gateway_max_events_per_request: int = Field(
        default=500, ge=1, description="A request that would produce more events is refused (413)."
    )
    gateway_rate_per_second: float = Field(
        default=50.0, gt=0, description="Requests per second each source may send on average (429 beyond)."
    )
    gateway_rate_burst: int = Field(default=100, ge=1, description="Requests a source may send at once (bucket size).")
    gateway_produce_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest the gateway waits for the broker to acknowledge a request's records."
    )
    gateway_retry_after_seconds: int = Field(
        default=5, ge=1, description="Retry-After of a 503 (broker failure or timeout)."
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        return ",".join(s.strip() for s in v.split(",") if s.strip())

    @property
    def canonical_url(self) -> str:
        """The URL other workers use to reach this worker's HTTP API."""
        host = self.web_advertised_host or self.web_host
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = socket.getfqdn()
        scheme = "https" if self.web_tls_certfile else "http"
        return f"{scheme}://{host}:{self.web_port}"

    @property
    def topic_incident_signals(self) -> str:
        """Internal: incident signals (key: rule + group value) and watermarks of every input partition."""
        return f"{self.app_id}-incident-signals"

    @property
    def topic_tickets_changelog(self) -> str:
        """Internal: ticket states (compacted), one partition per input partition."""
        return f"{self.app_id}-tickets-changelog"

    @property
    def topic_windows_changelog(self) -> str:
        """Internal: incident windows (compacted), one partition per incident-signal partition."""
        return f"{self.app_id}-incident-windows-changelog"

    @property
    def notify_dlq(self) -> str:
        """The relay's delivery dead-letter topic."""
        return self.notify_dlq_topic or f"{self.topic_notifications}.delivery-dlq"

    @property
    def topic_policies(self) -> str:
        """Published policy versions (``escalator policy publish``; compacted), one partition."""
        return f"{self.app_id}-policies"

    @property
    def topic_owners(self) -> str:
        """Internal: which worker owns which input partition (``/tickets/{id}`` routing), one partition."""
        return f"{self.app_id}-owners"

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Security options in aiokafka's keyword form (secrets unwrapped only here, never logged)."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        if self.security_protocol in ("SSL", "SASL_SSL"):
            import ssl

            ctx = ssl.create_default_context(cafile=str(self.ssl_cafile) if self.ssl_cafile else None)
            if self.ssl_certfile:
                ctx.load_cert_chain(
                    str(self.ssl_certfile),
                    str(self.ssl_keyfile) if self.ssl_keyfile else None,
                    self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
                )
            kwargs["ssl_context"] = ctx
        return kwargs

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(environment variable, default, description) for every setting."""
        rows = []
        for name, f in cls.model_fields.items():
            env = f"ESCALATOR_{name.upper()}"
            if name == "bootstrap_servers":
                env += " (or KAFKA_BOOTSTRAP_SERVERS)"
            default = f.default
            shown = "unset" if default is None else str(default)
            rows.append((env, shown, f.description or ""))
        return rows

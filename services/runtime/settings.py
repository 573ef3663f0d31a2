"""All configuration, in one frozen class read from `CEASEFIRE_*` environment variables.

Only this module reads the environment. Every field is listed in the README's configuration table.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import TOPICS, Role

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARCHIVE_FILE = "archive.sqlite"  # the embedded archive, under the data dir
# A directory of secret files named like the variables (ceasefire_kafka_password, …): Docker's and
# Kubernetes' secrets, so that no password has to be an environment variable (docs/security.md).
SECRETS_DIR = os.environ.get("CEASEFIRE_SECRETS_DIR") or None

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CEASEFIRE_", frozen=True, extra="ignore", secrets_dir=SECRETS_DIR)

    broker: str | None = Field(
        default=None, description="Kafka bootstrap URL (kafka://host:port); unset: start the embedded broker"
    )
    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="how every Kafka client of the service connects (docs/security.md)"
    )
    kafka_sasl_mechanism: SaslMechanism = Field(default="SCRAM-SHA-512", description="SASL mechanism (SASL_* protocols)")
    kafka_username: str | None = Field(default=None, description="SASL user: this service's Kafka principal")
    kafka_password: SecretStr | None = Field(default=None, description="SASL password (or a file in the secrets dir)")
    kafka_ca_file: FilePath | None = Field(
        default=None, description="PEM CA the brokers' certificates are checked against (SSL, SASL_SSL); unset: the system's"
    )
    kafka_cert_file: FilePath | None = Field(default=None, description="PEM client certificate, for brokers that ask for one")
    kafka_key_file: FilePath | None = Field(default=None, description="PEM private key of the client certificate")
    kafka_key_password: SecretStr | None = Field(default=None, description="password of an encrypted client key")
    app_id: str = Field(default="ceasefire-monitor", description="Faust app id: consumer group and table prefix")
    registry_path: Path = Field(
        default=PROJECT_ROOT / "deploy" / "ceasefires.yaml", description="ceasefire registry YAML"
    )
    sources_path: Path = Field(
        default=PROJECT_ROOT / "deploy" / "sources.yaml", description="source registry YAML (docs/security.md)"
    )
    sources_enforced: bool = Field(
        default=True,
        description="a source not in the source registry is dead-lettered (unknown_source); off: open deployments",
    )
    source_keys_path: Path | None = Field(
        default=None, description="signing secrets: a directory of files named by key id, or a YAML file key id → secret"
    )
    create_topics: bool = Field(
        default=True,
        description="create missing topics (and Faust's changelogs) at start; off where a topic init and ACLs own them",
    )
    partitions: int = Field(default=4, ge=1, description="partitions of every topic the service creates")
    replication_factor: int = Field(default=1, ge=1, description="replication factor of created topics")

    topic_reports: str = TOPICS[Role.REPORTS].default_name
    topic_dead_letters: str = TOPICS[Role.DEAD_LETTERS].default_name
    topic_by_source: str = TOPICS[Role.BY_SOURCE].default_name
    topic_duplicates: str = TOPICS[Role.DUPLICATES].default_name
    topic_accepted: str = TOPICS[Role.ACCEPTED].default_name
    topic_accepted_batches: str = TOPICS[Role.ACCEPTED_BATCHES].default_name
    topic_incidents: str = TOPICS[Role.INCIDENTS].default_name
    topic_by_ceasefire: str = TOPICS[Role.BY_CEASEFIRE].default_name
    topic_alerts: str = TOPICS[Role.ALERTS].default_name
    topic_fragility: str = TOPICS[Role.FRAGILITY].default_name
    topic_stage_dead_letters: str = TOPICS[Role.STAGE_DEAD_LETTERS].default_name
    topic_receipts: str = TOPICS[Role.RECEIPTS].default_name
    topic_placements: str = TOPICS[Role.PLACEMENTS].default_name

    dedup_retention_hours: float = Field(default=14 * 24, gt=0, description="dedup memory, in event time")
    max_future_minutes: float = Field(default=10, ge=0, description="how far ahead of now observed_at may be")
    before_effective_hours: float = Field(
        default=24, ge=0, description="how long before its ceasefire took effect observed_at may lie"
    )
    max_report_bytes: int = Field(default=64 * 1024, gt=0)
    idle_seconds: float = Field(
        default=10, gt=0,
        description="an ingest partition caught up and silent about a ceasefire this long holds its event time back no more",
    )
    fragility_step_minutes: float = Field(
        default=15, gt=0, description="event time between two points of the fragility series (as_of on this grid)"
    )

    store: str = Field(default="rocksdb://", description="Faust table store: rocksdb:// or memory://")
    data_dir: Path = Field(default=PROJECT_ROOT / ".state", description="local table state")
    rocksdb_write_buffer_mb: int = Field(
        default=4, ge=1, description="RocksDB memtable size per table partition (two per partition at most)"
    )
    rocksdb_block_cache_mb: int = Field(
        default=32, ge=1, description="RocksDB cache of the worker, shared by every table partition (blocks and memtables)"
    )
    rocksdb_memtables_mb: int = Field(
        default=16, ge=1, description="RocksDB memtables of the worker together; past this one is flushed"
    )
    web_host: str = Field(default="127.0.0.1", description="bind address of the web server (/metrics, API)")
    web_port: int = Field(default=6066, ge=0, le=65535, description="web server port; 0 disables it")
    http_ingest_port: int = Field(
        default=0, ge=0, le=65535, description="POST /reports for reporters without Kafka (docs/security.md); 0: off"
    )
    http_ingest_host: str = Field(default="127.0.0.1", description="bind address of POST /reports")
    http_ingest_max_bytes: int = Field(default=1024 * 1024, gt=0, description="largest body POST /reports takes (413 above)")
    http_ingest_rate_per_minute: float = Field(
        default=600, ge=0, description="records a minute each source may post over HTTP (429 above, with Retry-After)"
    )
    http_ingest_burst: int = Field(default=200, ge=1, description="records a source may post at once over HTTP")
    archive_url: SecretStr | None = Field(
        default=None,
        description="the archive's database (SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db); unset:"
        " SQLite at <data dir>/archive.sqlite",
    )
    archive_batch_max: int = Field(default=2000, ge=1, description="records the archive writes in one transaction")
    api_max_limit: int = Field(default=1000, ge=1, description="most rows one read API or CLI answer holds (then a cursor)")
    broker_port: int = Field(default=0, ge=0, le=65535, description="embedded broker port; 0 picks a free one")

    broker_wait_seconds: float = Field(
        default=30, ge=0, description="how long a starting worker waits for a broker that does not answer"
    )
    broker_lost_seconds: float = Field(
        default=60, ge=0, description="how long a running worker goes on without its broker before it exits (0: never)"
    )
    stop_timeout_seconds: float = Field(
        default=30, gt=0, description="how long a stop (SIGTERM, Ctrl-C) may take before the worker exits anyway"
    )
    session_timeout_seconds: float = Field(default=2.0, gt=0, description="consumer group session timeout")
    heartbeat_seconds: float = Field(default=0.5, gt=0)
    fetch_max_wait_ms: int = Field(
        default=20, ge=0, le=30000, description="consumer fetch wait; the embedded broker holds every fetch this long"
    )
    batch_max: int = Field(default=1000, ge=1, description="reports ingest-validate takes at once")
    batch_records_max: int = Field(
        default=64, ge=1, description="internal batch records (many reports each) the other agents take at once"
    )
    batch_bytes_max: int = Field(
        default=2 * 1024 * 1024, ge=1, description="bytes of records an agent takes at once: bounds a worker's memory under a backlog"
    )
    batch_within_seconds: float = Field(
        default=0.01, gt=0, description="longest wait to fill a batch: a floor on each hop's latency"
    )

    @model_validator(mode="after")
    def _kafka_security_agrees(self) -> Self:
        """A half-configured secure connection fails at start with the reason, not later as a timeout."""
        sasl, tls = self.kafka_security_protocol.startswith("SASL"), self.kafka_security_protocol.endswith("SSL")
        if sasl and (not self.kafka_username or self.kafka_password is None):
            raise ValueError(f"kafka_security_protocol={self.kafka_security_protocol} needs kafka_username and kafka_password")
        if not sasl and (self.kafka_username or self.kafka_password is not None):
            raise ValueError(f"kafka_username/kafka_password are set but kafka_security_protocol={self.kafka_security_protocol} sends no SASL")
        files = [name for name in ("kafka_ca_file", "kafka_cert_file", "kafka_key_file") if getattr(self, name) is not None]
        if files and not tls:
            raise ValueError(f"{', '.join(files)} set but kafka_security_protocol={self.kafka_security_protocol} uses no TLS")
        if (self.kafka_cert_file is None) != (self.kafka_key_file is None):
            raise ValueError("kafka_cert_file and kafka_key_file go together")
        return self

    @property
    def archive_address(self) -> str:
        """The archive's SQLAlchemy URL (secret: it may hold a password; never log it)."""
        if self.archive_url is not None:
            return self.archive_url.get_secret_value()
        return f"sqlite:///{self.data_dir / ARCHIVE_FILE}"

    alertmanager_url: str | None = Field(
        default=None,
        description="Alertmanager to forward the alert stream to (e.g. http://127.0.0.1:9093; docs/alertmanager.md); unset: off",
    )
    alertmanager_resend_seconds: float = Field(
        default=60, gt=0,
        description="how often firing alerts are sent again; each is sent valid for 4 resends, so Alertmanager keeps it firing between them",
    )
    alertmanager_timeout_seconds: float = Field(default=10, gt=0, description="longest wait for Alertmanager to answer one POST")
    alertmanager_backoff_max_seconds: float = Field(
        default=30, gt=0, description="longest pause between retries when Alertmanager is unreachable or answers 5xx/429"
    )
    alertmanager_batch_max: int = Field(default=500, ge=1, description="alerts in one POST to Alertmanager")
    alertmanager_generator_url: str | None = Field(
        default=None,
        description="each alert's generatorURL; {fingerprint} and {ceasefire} are filled in; unset: none",
    )

    @property
    def max_future(self) -> timedelta:
        return timedelta(minutes=self.max_future_minutes)

    @property
    def fragility_step(self) -> timedelta:
        return timedelta(minutes=self.fragility_step_minutes)

    @property
    def before_effective(self) -> timedelta:
        return timedelta(hours=self.before_effective_hours)

    def topic(self, role: Role) -> str:
        return str(getattr(self, f"topic_{role.value}"))

    def isolated(self, prefix: str) -> Settings:
        """A copy with its own consumer group and topic set (tests, benchmarks, side-by-side runs)."""
        ns = f"{prefix}{uuid.uuid4().hex[:10]}"
        topics = {f"topic_{role.value}": f"{ns}.{role.value}" for role in Role}
        return self.model_copy(update={"app_id": ns, **topics})

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` (a process environment) with these settings as `CEASEFIRE_*` variables, for a child."""
        env = {k: v for k, v in base.items() if not k.startswith("CEASEFIRE_")}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):  # a child needs the secret itself, not its mask
                value = value.get_secret_value()
            if value is not None:
                env[f"CEASEFIRE_{name.upper()}"] = str(value)
        return env

    @property
    def bootstrap(self) -> str:
        """host:port[,host:port…] for plain Kafka clients (aiokafka, kcat), from a URL that may list
        several brokers as Faust takes them (`kafka://a:9092,b:9092` or `kafka://a:9092;kafka://b:9092`)."""
        if self.broker is None:
            raise ValueError("no broker configured")
        return ",".join(part.strip().removeprefix("kafka://") for part in self.broker.replace(";", ",").split(","))

"""The archive's relational schema (SQLAlchemy Core): one definition for SQLite and PostgreSQL.

Keys are the topics' keys, so a replayed record lands on the row it made before (docs/archive.md):
a report by `(source, report_id)`, an incident by `incident_id` (and its versions by `(incident_id,
version)`), an alert by `fingerprint` (its episodes by `(fingerprint, starts_at)`), a fragility point by
`(ceasefire_id, as_of, kind)`, a duplicate or dead letter by where it was read on the ingest topic.
Migrations (services/archive/migrations) create exactly this; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()


class UtcTime(TypeDecorator[datetime]):
    """Times in UTC, whatever the database: PostgreSQL keeps `timestamptz`, SQLite naive UTC text (so
    its text order is time order). Always read back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Document = JSON().with_variant(JSONB(), "postgresql")  # a record's JSON, kept whole


def _text(name: str, **kwargs: Any) -> Column[Any]:
    return Column(name, String(200), **kwargs)


meta = Table(
    "archive_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

reports = Table(  # the current accepted revision of each report
    "reports",
    metadata,
    _text("source", primary_key=True),
    _text("report_id", primary_key=True),
    _text("ceasefire_id", nullable=False),
    Column("revision", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("retraction_reason", Text),
    _text("source_party", nullable=False),
    _text("accused_party"),
    Column("observed_at", UtcTime, nullable=False),
    Column("reported_at", UtcTime),
    Column("ingested_at", UtcTime, nullable=False),
    _text("violation_type", nullable=False),
    _text("sector"),
    _text("place"),
    Column("lat", Float),
    Column("lon", Float),
    Column("precision_km", Float),
    Column("killed", Integer),
    Column("injured", Integer),
    Column("civilian", Boolean),
    Column("description", Text),
    Column("body", Document, nullable=False),
    Index("reports_ceasefire_observed", "ceasefire_id", "observed_at"),
)

report_revisions = Table(
    "report_revisions",
    metadata,
    _text("source", primary_key=True),
    _text("report_id", primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("ingested_at", UtcTime, nullable=False),
    Column("body", Document, nullable=False),
)

duplicates = Table(
    "duplicates",
    metadata,
    Column("origin_partition", Integer, primary_key=True),
    Column("origin_offset", Integer, primary_key=True),
    _text("source", nullable=False),
    _text("report_id", nullable=False),
    Column("rule", String(16), nullable=False),
    _text("duplicate_of", nullable=False),
    Column("at", UtcTime, nullable=False),
    Index("duplicates_report", "source", "report_id"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("origin_partition", Integer, primary_key=True),  # where the record was read on the ingest topic
    Column("origin_offset", Integer, primary_key=True),
    _text("reason", nullable=False),
    Column("problems", Document, nullable=False),
    _text("source"),  # when the record could be read far enough to name its report
    _text("report_id"),
    Column("revision", Integer),
    Column("key", LargeBinary),
    Column("value", LargeBinary),  # the original bytes, unchanged
    Column("at", UtcTime, nullable=False),
    Index("dead_letters_at", "at"),
    Index("dead_letters_report", "source", "report_id"),
)

incidents = Table(  # the current version of each incident
    "incidents",
    metadata,
    _text("incident_id", primary_key=True),
    _text("ceasefire_id", nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    _text("merged_into"),
    Column("first_observed_at", UtcTime, nullable=False),
    Column("last_observed_at", UtcTime, nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("radius_km", Float),
    Column("severity", Integer, nullable=False),
    Column("report_count", Integer, nullable=False),
    Column("killed_low", Integer),
    Column("killed_high", Integer),
    Column("injured_low", Integer),
    Column("injured_high", Integer),
    Column("reciprocal", Boolean),
    Column("late", Boolean, nullable=False),
    Column("ordered_at", UtcTime),
    Column("body", Document, nullable=False),
    Index("incidents_ceasefire_last", "ceasefire_id", "last_observed_at"),
)

incident_versions = Table(
    "incident_versions",
    metadata,
    _text("incident_id", primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("ordered_at", UtcTime),
    Column("body", Document, nullable=False),
)

incident_members = Table(  # the reports of each incident's current version
    "incident_members",
    metadata,
    _text("incident_id", primary_key=True),
    _text("source", primary_key=True),
    _text("report_id", primary_key=True),
    Column("revision", Integer, nullable=False),
    _text("sector"),
    Index("incident_members_report", "source", "report_id"),
    Index("incident_members_sector", "sector"),
)

alerts = Table(  # the newest record of each alert
    "alerts",
    metadata,
    _text("fingerprint", primary_key=True),
    Column("version", Integer, nullable=False),
    _text("alertname", nullable=False),
    _text("ceasefire_id", nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("starts_at", UtcTime, nullable=False),
    Column("ends_at", UtcTime),
    Column("updated_at", UtcTime, nullable=False),
    Column("labels", Document, nullable=False),
    Column("annotations", Document, nullable=False),
)

alert_episodes = Table(  # one row per firing episode: Grafana's annotations, "who was told, and when"
    "alert_episodes",
    metadata,
    _text("fingerprint", primary_key=True),
    Column("starts_at", UtcTime, primary_key=True),
    Column("version", Integer, nullable=False),
    _text("alertname", nullable=False),
    _text("ceasefire_id", nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("ends_at", UtcTime),
    Column("updated_at", UtcTime, nullable=False),
    Column("summary", Text, nullable=False),
    Column("labels", Document, nullable=False),
    Column("annotations", Document, nullable=False),
    Index("alert_episodes_ceasefire_start", "ceasefire_id", "starts_at"),
)

fragility = Table(
    "fragility",
    metadata,
    _text("ceasefire_id", primary_key=True),
    Column("as_of", UtcTime, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("fragility_index", Float, nullable=False),
    Column("components", Document, nullable=False),
    Column("inputs", Document, nullable=False),
    Column("weights", Document, nullable=False),
)

faults = Table(  # records of these topics that could not be read as their model: kept, never dropped
    "faults",
    metadata,
    Column("topic_role", String(32), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("offset", Integer, primary_key=True),
    Column("error", Text, nullable=False),
    Column("value", LargeBinary),
    Column("at", UtcTime, nullable=False),
)

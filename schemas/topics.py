"""The one place that names every topic: its default name, key, value and retention policy.

Names are configurable (settings `CEASEFIRE_TOPIC_<ROLE>`); agents, tests and tools look topics up
here by role, never by a string literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    REPORTS = "reports"
    DEAD_LETTERS = "dead_letters"
    BY_SOURCE = "by_source"
    DUPLICATES = "duplicates"
    ACCEPTED = "accepted"
    ACCEPTED_BATCHES = "accepted_batches"
    INCIDENTS = "incidents"
    BY_CEASEFIRE = "by_ceasefire"
    ALERTS = "alerts"
    FRAGILITY = "fragility"
    STAGE_DEAD_LETTERS = "stage_dead_letters"


@dataclass(frozen=True)
class TopicSpec:
    role: Role
    default_name: str
    key: str
    value: str
    compacted: bool = False
    internal: bool = False


TOPICS: dict[Role, TopicSpec] = {
    spec.role: spec
    for spec in (
        TopicSpec(Role.REPORTS, "ceasefire.reports.v1", "anything (reporters choose)", "Report (JSON)"),
        TopicSpec(
            Role.DEAD_LETTERS,
            "ceasefire.reports.v1.dlq",
            "original key, unchanged",
            "original bytes, unchanged; headers say why (Kafka Connect names)",
        ),
        TopicSpec(
            Role.BY_SOURCE,
            "ceasefire.internal.reports.by-source.v1",
            "none; partition = stable hash of `source`",
            "ReportBatch: validated reports of one partition, many per record",
            internal=True,
        ),
        TopicSpec(
            Role.DUPLICATES,
            "ceasefire.reports.duplicates.v1",
            "`source`",
            "Duplicate: which report it repeats and by which rule",
        ),
        TopicSpec(
            Role.ACCEPTED,
            "ceasefire.reports.accepted.v1",
            "`ceasefire_id`",
            "AcceptedReport: the validated, normalised report plus `ingested_at`",
        ),
        TopicSpec(
            Role.ACCEPTED_BATCHES,
            "ceasefire.internal.reports.accepted.v1",
            "none; partition = the accepted topic's partition of the ceasefire",
            "AcceptedBatch: the accepted reports of one partition, many per record (correlate's input)",
            internal=True,
        ),
        TopicSpec(
            Role.INCIDENTS,
            "ceasefire.incidents.v1",
            "`incident_id`",
            "Incident: the whole current incident, a new `version` per change",
            compacted=True,
        ),
        TopicSpec(
            Role.BY_CEASEFIRE,
            "ceasefire.internal.incidents.by-ceasefire.v1",
            "none; partition = the accepted topic's partition of the ceasefire",
            "IncidentBatch: incident versions of one correlate batch, with watermarks",
            internal=True,
        ),
        TopicSpec(
            Role.ALERTS, "ceasefire.alerts.v1", "`fingerprint`", "Alert (Alertmanager-like)", compacted=True
        ),
        TopicSpec(Role.FRAGILITY, "ceasefire.fragility.v1", "`ceasefire_id`", "FragilitySnapshot"),
        TopicSpec(
            Role.STAGE_DEAD_LETTERS,
            "ceasefire.stages.v1.dlq",
            "none",
            "what a stage after validation could not process: the undecodable record's bytes, or the one"
            " report or incident version its logic raised on; headers name the stage, the input and the error",
        ),
    )
}

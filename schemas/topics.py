"""The one place that names every topic: its default name, key, value and retention policy, and in
code its value model and key function (as kafka-streams-examples' `Schemas.Topics` does).

Names are configurable (settings `CEASEFIRE_TOPIC_<ROLE>`); agents, tests and tools look topics up
here by role, never by a string literal. Stages decode a topic with its `reader` and publish a model
on it with its `key_of` (services/runtime/stage.py): no stage picks a model or a key by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from schemas.alert import Alert
from schemas.fragility import FragilitySnapshot
from schemas.incident import Incident, IncidentBatch, IncidentVersionBatch
from schemas.ingest import AcceptedBatch, Duplicate, ReportBatch
from schemas.receipt import Placement, Receipt
from schemas.report import AcceptedReport


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
    RECEIPTS = "receipts"
    PLACEMENTS = "placements"


@dataclass(frozen=True)
class TopicSpec:
    role: Role
    default_name: str
    key: str  # what the key is, for people (docs/topics.md)
    value: str  # what the value is, for people
    compacted: bool = False
    internal: bool = False
    model: type[BaseModel] | None = None  # the value's model; None: bytes as sent (reports, dead letters)
    key_of: Callable[[Any], str] | None = None  # the record key from the value; None: the writer picks the partition
    read_as: type[BaseModel] | None = None  # a lighter model to read the same bytes with (fewer fields checked)

    @property
    def reader(self) -> type[BaseModel]:
        model = self.read_as or self.model
        if model is None:
            raise TypeError(f"topic {self.role} carries bytes as sent, not a model")
        return model


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
            model=ReportBatch,
        ),
        TopicSpec(
            Role.DUPLICATES,
            "ceasefire.reports.duplicates.v1",
            "`source`",
            "Duplicate: which report it repeats and by which rule",
            model=Duplicate,
            key_of=lambda duplicate: duplicate.source,
        ),
        TopicSpec(
            Role.ACCEPTED,
            "ceasefire.reports.accepted.v1",
            "`ceasefire_id`",
            "AcceptedReport: the validated, normalised report plus `ingested_at`",
            model=AcceptedReport,
            key_of=lambda report: report.ceasefire_id,
        ),
        TopicSpec(
            Role.ACCEPTED_BATCHES,
            "ceasefire.internal.reports.accepted.v1",
            "none; partition = the accepted topic's partition of the ceasefire",
            "AcceptedBatch: the accepted reports of one partition, many per record (correlate's input)",
            internal=True,
            model=AcceptedBatch,
        ),
        TopicSpec(
            Role.INCIDENTS,
            "ceasefire.incidents.v1",
            "`incident_id`",
            "Incident: the whole current incident, a new `version` per change",
            compacted=True,
            model=Incident,
            key_of=lambda incident: incident.incident_id,
        ),
        TopicSpec(
            Role.BY_CEASEFIRE,
            "ceasefire.internal.incidents.by-ceasefire.v1",
            "none; partition = the accepted topic's partition of the ceasefire",
            "IncidentBatch: incident versions of one correlate batch, with watermarks",
            internal=True,
            model=IncidentBatch,
            read_as=IncidentVersionBatch,  # the alert stage skips the reports
        ),
        TopicSpec(
            Role.ALERTS,
            "ceasefire.alerts.v1",
            "`fingerprint`",
            "Alert (Alertmanager-like)",
            compacted=True,
            model=Alert,
            key_of=lambda alert: alert.fingerprint,
        ),
        TopicSpec(
            Role.FRAGILITY,
            "ceasefire.fragility.v1",
            "`ceasefire_id`",
            "FragilitySnapshot",
            model=FragilitySnapshot,
            key_of=lambda snapshot: snapshot.ceasefire_id,
        ),
        TopicSpec(
            Role.RECEIPTS,
            "ceasefire.reports.receipts.v1",
            "`<source> <report_id>`",
            "Receipt: what became of the report (accepted, duplicate, dead-lettered, retracted), its current"
            " revision and every rejection, rewritten whole by dedup at each ruling",
            compacted=True,
            model=Receipt,
            key_of=lambda receipt: receipt.key,
        ),
        TopicSpec(
            Role.PLACEMENTS,
            "ceasefire.reports.placements.v1",
            "`<source> <report_id>`",
            "Placement: the incident correlation holds the report in (null once retracted)",
            compacted=True,
            model=Placement,
            key_of=lambda placement: placement.key,
        ),
        TopicSpec(
            Role.STAGE_DEAD_LETTERS,
            "ceasefire.stages.v1.dlq",
            "none",
            "what a stage after validation could not process: the undecodable record's bytes, or the one"
            " report or incident version its logic raised on; headers name the stage, the input and the error",
        ),
    )
}

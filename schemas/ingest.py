"""Messages that ingest writes besides the accepted report: the internal batch and the duplicate record."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.report import AcceptedReport


class Origin(BaseModel):
    """Where a report was read from: the ingest topic's partition and offset."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    partition: int
    offset: int


class SourcedReport(BaseModel):
    """A validated report, with the record it was read from: dedup may still dead-letter it (too old
    to judge), and a dead letter carries the original key and bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    origin: Origin
    report: AcceptedReport
    raw: str = ""  # the record's value as sent (UTF-8: validation read it as JSON)
    raw_key: str | None = None  # the record's key, base64 (any bytes)

    @property
    def where(self) -> str:
        """`partition:offset` on the ingest topic: the record's identity for re-delivery."""
        return f"{self.origin.partition}:{self.origin.offset}"


class ReportBatch(BaseModel):
    """Internal topic record: many validated reports bound for one dedup partition.

    Batching here spends Faust's per-event cost once per batch instead of once per report.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    reports: list[SourcedReport]


class AcceptedBatch(BaseModel):
    """Internal topic record: the accepted reports of one dedup batch bound for one correlate partition.

    The same reports as on the public accepted topic (one record each, for subscribers); correlate
    reads these instead, paying Faust's per-event cost once per batch.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    reports: list[AcceptedReport]


class Duplicate(BaseModel):
    """Topic `ceasefire.reports.duplicates.v1`: a report dropped as a repeat, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    report_id: str
    rule: Literal["exact", "resubmission"]
    duplicate_of: str  # report_id of the first report with this identity or content
    origin: Origin

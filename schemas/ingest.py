"""Messages that ingest writes besides the accepted report: the internal batch and the duplicate record."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter

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


class Problem(BaseModel):
    """One reason a record was dead-lettered (as in the dead letter's `ceasefire.errors` header)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reason: str
    path: str
    message: str


class Rejected(BaseModel):
    """A record validation dead-lettered that names its report `(source, report_id)`: carried to the
    source's dedup partition for the report's receipt (schemas/receipt.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str  # the registry's spelling, or folded: as the report would have been stored
    report_id: str
    ceasefire_id: str | None = None
    revision: int | None = None
    reason: str
    problems: list[Problem]
    origin: Origin


class Mark(BaseModel):
    """How far event time has come on one upstream partition, for one ceasefire (docs/event-time.md):
    no report of it still to come on that partition is ordered before `at`. `idle`: the partition is
    caught up and has been silent about the ceasefire for the idle interval, so it holds nobody back;
    `at` None: it has had no report of the ceasefire yet."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    at: AwareDatetime | None = None
    idle: bool = False


UPSTREAM_MARKS = TypeAdapter(dict[str, Mark])  # upstream partition → its mark (one ceasefire's)
PARTITION_MARKS = TypeAdapter(dict[str, dict[str, Mark]])  # partition → ceasefire id → mark


class ReportBatch(BaseModel):
    """Internal topic record: many validated reports bound for one dedup partition, then the progress
    of the ingest partitions they came from (after them: a mark never overtakes a report).

    Batching here spends Faust's per-event cost once per batch instead of once per report.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    reports: list[SourcedReport]
    rejected: list[Rejected] = []  # records of this partition's sources validation dead-lettered
    progress: dict[str, dict[str, Mark]] = {}  # ingest partition → ceasefire id → its mark


class AcceptedBatch(BaseModel):
    """Internal topic record: the accepted reports of one dedup batch bound for one correlate partition.

    The same reports as on the public accepted topic (one record each, for subscribers); correlate
    reads these instead, paying Faust's per-event cost once per batch.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    reports: list[AcceptedReport]
    marks: dict[str, dict[str, Mark]] = {}  # dedup partition → ceasefire id → its low watermark, after the reports


class Duplicate(BaseModel):
    """Topic `ceasefire.reports.duplicates.v1`: a report dropped as a repeat, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    report_id: str
    rule: Literal["exact", "resubmission"]
    duplicate_of: str  # report_id of the first report with this identity or content
    origin: Origin

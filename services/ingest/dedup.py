"""Deduplication: exact repeats and resubmissions of the same content by the same source.

Pure: the durable store is a `StateStore` (services/store.py: a table partition in the service, a
`MemoryStore` in tests); the entries' format is services/ingest/persist.py's. Entries expire by event
time. Reports from different sources are never duplicates of each other: that is corroboration,
correlation's business.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from schemas.ingest import Origin
from schemas.receipt import Receipt
from schemas.report import Report
from services.ingest import persist
from services.ingest.persist import (
    ORIGIN_PREFIX,
    WATERMARK_KEY,
    Entry,
    expires_by,
    fingerprint_key,
    origin_key,
    read_entry,
    receipt_entry_key,
    write_entry,
)
from services.store import StateStore

_SPACES = re.compile(r"\s+")
_CONTENT_FIELDS = set(Report.model_fields) - {"revision"}
RETRACTED_MARK = "R"  # leads the content digest of a retraction (digests are lower-case hex otherwise)
KEPT_REVISIONS = 16  # digests of a report's revisions kept: an older re-send than these is ruled stale
__all__ = ["WATERMARK_KEY", "DedupState", "Decision", "content_fingerprint", "identity_key"]


def identity_key(report: Report) -> str:
    """Exact rule: `(source, report_id)` identifies a report."""
    return persist.identity_key(report.source, report.report_id)


def content_fingerprint(report: Report) -> str:
    """Resubmission rule: what stays the same when a source re-sends one report under a new id.

    Minute of `observed_at`, coordinates on a 0.001° grid (~110 m) or else the sector, type,
    casualties (absent is not zero) and the case- and whitespace-folded description.
    """
    where = report.location
    if where.lat is not None and where.lon is not None:
        place = f"@{round(where.lat, 3):.3f},{round(where.lon, 3):.3f}"
    else:
        place = f"#{(where.sector or '').casefold()}"
    c = report.casualties
    casualties = "-" if c is None else f"{c.killed}/{c.injured}/{c.civilian}"
    text = _SPACES.sub(" ", (report.description or "").casefold()).strip()
    minute = report.observed_at.strftime("%Y-%m-%dT%H:%M")
    parts = [report.source, report.ceasefire_id, report.violation_type.value, minute, place, casualties, text]
    if report.retracted:  # a retraction is not a resubmission of what it withdraws
        parts.append("retracted")
    material = "\x1f".join(parts)
    return fingerprint_key(hashlib.blake2b(material.encode(), digest_size=16).hexdigest())


def content_digest(report: Report) -> str:
    """What "identical content" means between two revisions of one report: every field a source
    writes but `revision`, as validation normalised it (the service's own fields left out)."""
    material = report.model_dump_json(include=_CONTENT_FIELDS)
    digest = hashlib.blake2b(material.encode(), digest_size=12).hexdigest()
    return RETRACTED_MARK + digest if report.retracted else digest  # a retraction's is marked: it is final


@dataclass(frozen=True, slots=True)
class Decision:
    """What dedup rules on one report read at `origin`.

    - `accepted`: new; publish it.
    - `duplicate`: repeats the report `duplicate_of` by `rule`.
    - `redelivered`: the very record ruled on before (same origin): its outcome is already written,
      so nothing is written again and nothing counted twice. A crash or a rebalance re-delivers.
    - `too_old`: older than the retention behind the partition's newest report: dedup can no longer
      tell a repeat from a new report, so it is dead-lettered, never silently accepted.
    - `stale`: the report again with an equal or lower revision than accepted, and other content:
      dead-lettered (`stale_revision`), never silently dropped.
    - `final`: a newer revision of a report its source retracted: a retraction is final, so it is
      dead-lettered (`retracted`); a correction is a new report under a new id.
    `revises`: on an accepted revision, the revision it replaces; on a stale one, the current one.
    """

    outcome: Literal["accepted", "duplicate", "redelivered", "too_old", "stale", "final"]
    rule: Literal["exact", "resubmission"] | None = None
    duplicate_of: str | None = None  # report_id of the report this one repeats
    revises: int | None = None


ACCEPTED = Decision("accepted")
REDELIVERED = Decision("redelivered")
TOO_OLD = Decision("too_old")


class DedupState:
    """Which reports a partition has seen, within a retention window of event time.

    Decisions are staged in `pending` and reach the store only on `commit()`, which the agent calls
    after the outputs are acknowledged by the broker: a crash in between re-emits, never drops.
    An entry is `<observed_at epoch s>␟<report_id>␟<origin>` (the origin `partition:offset` of the
    record ruled on; entries written before origins were kept have none).
    """

    def __init__(self, store: StateStore, retention_seconds: float, scope: str = "") -> None:
        """`scope` prefixes every key, so one store can hold the state of several partitions."""
        self.store = store
        self.retention = retention_seconds
        self.scope = scope
        self.pending: dict[str, str | None] = {}
        self.origins: dict[str, str] = {}  # origin key → duplicate_of, timed when committed
        self.watermark = float(store.get(scope + WATERMARK_KEY) or "0")

    def decide(self, report: Report, origin: str = "") -> Decision:
        """First one wins; staged, so a repeat within the same batch is caught too. `origin` is where
        the record was read (`partition:offset` of the ingest topic); empty: no re-delivery check."""
        if origin and self._ruled(self.scope + origin_key(origin)):
            return REDELIVERED
        observed = report.observed_at.timestamp()
        self.watermark = max(self.watermark, observed)
        horizon = self.watermark - self.retention
        if observed < horizon:
            self._remember(origin, "")
            return TOO_OLD
        identity, fingerprint = self.scope + identity_key(report), self.scope + content_fingerprint(report)
        digest = content_digest(report)
        known = self._live(identity, horizon)
        revisions: dict[int, str] = {report.revision: digest}
        revises = None
        if known is not None:
            if origin and known.origin == origin:
                return REDELIVERED  # the accepted record itself, again
            ruled = _revision(known, report.revision, digest)
            if ruled is not None:
                self._remember(origin, known.report_id)
                return ruled
            revises = max(known.revisions, default=1)
            revisions = _kept({**known.revisions, report.revision: digest})
            observed = max(observed, known.expires_by)
        else:
            first = self._live(fingerprint, horizon)
            if first is not None:
                if origin and first.origin == origin:
                    return REDELIVERED
                self._remember(origin, first.report_id)
                return Decision("duplicate", "resubmission", first.report_id)
        self.pending[identity] = write_entry(observed, report.report_id, origin, revisions)
        self.pending[fingerprint] = write_entry(observed, report.report_id, origin)
        return ACCEPTED if revises is None else Decision("accepted", revises=revises)

    def receipt(self, source: str, report_id: str, ceasefire_id: str | None = None) -> Receipt | None:
        """The report's receipt: as last filed, or, for a plain one (accepted, nothing else to say: not
        stored), what the report's identity entry says (`plain_receipt`)."""
        filed = self.filed_receipt(source, report_id)
        if filed is not None:
            return filed
        identity = self.scope + persist.identity_key(source, report_id)
        entry = self.pending.get(identity) or self.store.get(identity)
        return None if entry is None else plain_receipt(source, read_entry(entry), ceasefire_id)

    def filed_receipt(self, source: str, report_id: str) -> Receipt | None:
        """The receipt stored for the report (staged ones first); None for none, or a plain one."""
        key = self.scope + receipt_entry_key(source, report_id)
        text = self.pending[key] if key in self.pending else self.store.get(key)
        return None if text is None else Receipt.model_validate_json(text.partition("\x1f")[2])

    def file_receipt(
        self, receipt: Receipt, observed: float | None = None, encoded: bytes | None = None, filed: bool | None = None
    ) -> None:
        """Stage a receipt, kept as long as its report's dedup entries (`observed`: its event time; none
        known, the partition's); a plain one as no entry (one write a report fewer: the common case).
        `filed`: whether one is stored now, when the caller has just read it (None: look)."""
        key = self.scope + receipt_entry_key(receipt.source, receipt.report_id)
        if is_plain(receipt):
            if filed is None:
                filed = self.pending.get(key) is not None or self.store.get(key) is not None
            if filed:
                self.pending[key] = None  # what was said before no longer stands
            return
        expires = self.watermark if observed is None else observed
        text = (encoded or receipt.model_dump_json().encode()).decode()
        self.pending[key] = f"{expires:.0f}\x1f{text}"

    def _remember(self, origin: str, report_id: str) -> None:
        if origin:
            self.origins[self.scope + origin_key(origin)] = report_id

    def _ruled(self, key: str) -> bool:
        if key in self.origins:
            return True
        entry = self.store.get(key)
        return entry is not None and expires_by(entry) >= self.watermark - self.retention

    def _live(self, key: str, horizon: float) -> Entry | None:
        text = self.pending.get(key) or self.store.get(key)
        if text is None:
            return None
        entry = read_entry(text)
        # Expired entries are ignored even before the sweep deletes them: decisions depend on
        # event time only, never on when the sweep happened to run.
        return entry if entry.expires_by >= horizon else None

    def commit(self) -> None:
        """Write staged decisions and the watermark to the durable store. An origin entry is timed by
        the watermark at commit, not by its report's old `observed_at`: a re-delivery comes after the
        batch, and must find it for as long as retention allows."""
        for key, report_id in self.origins.items():
            self.pending[key] = write_entry(self.watermark, report_id, key.rpartition(ORIGIN_PREFIX)[2])
        self.pending[self.scope + WATERMARK_KEY] = f"{self.watermark:.0f}"
        self.store.apply(self.pending)  # one batch, the watermark last
        self.pending, self.origins = {}, {}

    def expire(self) -> int:
        """Delete entries older than retention behind the watermark; returns how many went."""
        horizon = self.watermark - self.retention
        mark = self.scope + WATERMARK_KEY
        stale = [key for key, entry in self.store.scan(self.scope) if key != mark and expires_by(entry) < horizon]
        self.store.apply(dict.fromkeys(stale))
        return len(stale)


def is_plain(receipt: Receipt) -> bool:
    """Accepted, never repeated or rejected: all of it is in the identity entry."""
    return receipt.outcome == "accepted" and not receipt.rejections and not receipt.repeats


def plain_receipt(source: str, entry: Entry, ceasefire_id: str | None) -> Receipt:
    """The receipt of an accepted report that was never filed (it was plain), from its identity entry;
    when it was accepted (processing time) is not kept there."""
    partition, _, offset = entry.origin.partition(":")
    origin = Origin(partition=int(partition), offset=int(offset)) if offset else None
    return Receipt.model_construct(
        source=source, report_id=entry.report_id, ceasefire_id=ceasefire_id, outcome="accepted",
        revision=max(entry.revisions, default=1), retraction_reason=None, duplicate_of=None, rule=None, repeats=0,
        accepted_at=None, origin=origin, rejections=[], updated_at=datetime.now(UTC),
    )


def _revision(known: Entry, revision: int, digest: str) -> Decision | None:
    """The same `(source, report_id)` again: None if `revision` replaces what was accepted, else the
    ruling (a repeat of an accepted revision, or a stale one)."""
    accepted = known.revisions
    current = max(accepted, default=1)
    if revision > current:
        return Decision("final", revises=current) if accepted.get(current, "").startswith(RETRACTED_MARK) else None
    seen = accepted.get(revision, "" if not accepted else None)  # "": an entry from before revisions
    if seen == digest or seen == "":
        return Decision("duplicate", "exact", known.report_id)
    return Decision("stale", revises=current)


def _kept(revisions: dict[int, str]) -> dict[int, str]:
    """The newest KEPT_REVISIONS revisions, oldest first (the entry stays small whatever a source does)."""
    return dict(sorted(revisions.items())[-KEPT_REVISIONS:])

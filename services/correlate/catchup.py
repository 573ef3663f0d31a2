"""After a crash that tore a batch's writes: replay up to what was published, silently.

The shell stores a batch's version reservations, publishes its incident records, stores `~published`
(the batch's number), then the rest (services/correlate/agent.py, persist.py). A crash after the records
went out but before the rest was stored leaves incidents whose stored version is ahead of their stored
reports, and the batch is processed again. Published as they come, the rebuilt versions replayed each
incident's history after its newest record (v5…v8 repeating v1…v4): a "mutual" incident was "claimed"
again for a moment, and the alert stage ended and restarted its alerts (tests/e2e/test_arrival_order.py's
restart, ~1 run in 6).

So each stored incident entry carries the content of its newest record (a digest of its reports at
their revisions, or where it was merged), its batch and the batch's event time. On restore, an incident
of a published batch whose stored reports do not give that content *catches up*: its rebuilt records are
held back until one has the published content (then nothing goes out: downstream has it), or, should
the replay differ, until event time passes the batch's, when the newest held record goes out.

A batch whose reservations were all stored (`~reserved`, their last entry) but whose `~published` was
not may have gone out or not (the crash fell between the two: the sends and one changelog round trip).
Its incidents catch up the same way, and the rebuilt record that reaches the content *is* published
(a new version saying what downstream has, or the first to say it): publishing the history again
instead made an incident regress late in event time (~1 run in 15 of the e2e restart). A batch with a
reservation missing was not published: its incidents count on and publish as before.

The versions a batch reserved for an incident run from the one stored before it (`from`) to the one
reserved. A replay that reaches the content in exactly that many records is the batch again (correlation
is a function of the reports), so its records go out under those versions, v(from+1)…v(reserved): what
downstream has already, or, if the crash came before the records went out, the history it never saw
(publishing only the last record skipped it: an alert began at a later record, ~1 run in 3 of the
replica fault test). A replay of another length publishes only the record that reaches the content,
under its own version, above the reserved ones. While records are held back to be published, the
watermark sent downstream waits at the first of them (`held_back`): the replaying worker's batches are
not the crashed one's, and the alert stage must take each record at its own event time. Pure; no
framework.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from hashlib import blake2b

from schemas.incident import GONE, Incident
from services.correlate.link import HeldReport


def content(members: Iterable[tuple[str, str, int]], merged_into: str | None) -> str:
    """What an incident's record says, as far as any later stage can tell apart: its reports at their
    revisions, or the incident it was merged into."""
    digest = blake2b(digest_size=10)
    if merged_into is not None:
        digest.update(b"merged\x1f" + merged_into.encode())
    else:
        for source, report_id, revision in sorted(members):
            digest.update(f"{source}\x1f{report_id}\x1f{revision}\x1e".encode())
    return digest.hexdigest()


def held_content(members: Iterable[HeldReport]) -> str:
    """The content of an open incident's state: what its next record will say."""
    return content(((*m.key, m.revision) for m in members), None)


def record_content(record: Incident) -> str:
    merged_into = record.merged_into if record.status == "merged" else None
    return content(((r.source, r.report_id, r.revision) for r in record.reports), merged_into)


def taken_at(record: Incident) -> datetime:
    """The event time the alert stage takes a record at: its `ordered_at`, or its newest report's
    time when that is later or there is none (services/alert/rules.py `observe`)."""
    ordered = record.ordered_at
    return record.last_observed_at if ordered is None or ordered < record.last_observed_at else ordered


class CatchUp:
    """The incidents catching up after a torn write, and their held-back records."""

    def __init__(self) -> None:
        # incident id → (published content, batch event time µs, publish the record that reaches it)
        self.targets: dict[str, tuple[str, int, bool]] = {}
        self.held: dict[str, Incident] = {}  # incident id → its newest record not published
        # incident id → (version stored before the batch, version reserved), and the records held since
        self.spans: dict[str, tuple[int, int]] = {}
        self.history: dict[str, list[Incident]] = {}
        # incident id → event time of the first record held back that is to be published (announced)
        self.holding: dict[str, datetime] = {}

    def __bool__(self) -> bool:
        return bool(self.targets)

    def expect(
        self, incident_id: str, published: str, until_us: int, announce: bool = False, span: tuple[int, int] | None = None
    ) -> None:
        """`announce`: the records may not have gone out, so the one reaching `published` is sent;
        `span`: the versions its batch reserved (from, to], for a replay that is the batch again."""
        self.targets[incident_id] = (published, until_us, announce)
        if announce and span is not None and span[1] > span[0]:
            self.spans[incident_id] = span
            self.history[incident_id] = []

    def passed(self, records: list[Incident]) -> list[Incident]:
        """The records to publish: all but those of incidents catching up, which are held back; one
        with the published content ends the catch-up, and is published only if announced (with the
        records before it, under the reserved versions, when the replay is the batch again)."""
        if not self.targets:
            return records
        out: list[Incident] = []
        for record in records:
            target = self.targets.get(record.incident_id)
            if target is None:
                out.append(record)
            elif record_content(record) == target[0]:
                replayed = self._replayed(record)
                self._end(record.incident_id)
                if target[2]:
                    out.extend(replayed)
            else:
                self.held[record.incident_id] = record
                if record.incident_id in self.history:
                    self.history[record.incident_id].append(record)
                if target[2] and record.incident_id not in self.holding:
                    self.holding[record.incident_id] = taken_at(record)
        return out

    def held_back(self) -> datetime | None:
        """The event time of the earliest record held back that will be published: the watermark sent
        downstream waits there, so the alert stage takes it at the event time it was made, as an
        uncrashed run's would (not after the watermark passed it)."""
        return min(self.holding.values(), default=None)

    def _replayed(self, reaching: Incident) -> list[Incident]:
        """What an announced catch-up publishes: the batch's records again under the versions it
        reserved when the replay has as many, else the record that reaches the content alone."""
        span = self.spans.get(reaching.incident_id)
        records = [*self.history.get(reaching.incident_id, ()), reaching]
        if span is None or len(records) != span[1] - span[0]:
            return [reaching]
        return [record.model_copy(update={"version": span[0] + 1 + i}) for i, record in enumerate(records)]

    def overdue(self, watermark_us: int | None) -> list[Incident]:
        """Once event time has passed a torn batch's, its incidents that never came back to their
        published content publish what they are now (merged ones first, as the shell orders)."""
        if not self.targets or watermark_us is None:
            return []
        due = [iid for iid, (_, until_us, _) in self.targets.items() if watermark_us > until_us]
        out = [record for iid in due if (record := self._end(iid)) is not None]
        return sorted(out, key=lambda record: record.status not in GONE)

    def _end(self, incident_id: str) -> Incident | None:
        del self.targets[incident_id]
        self.spans.pop(incident_id, None)
        self.history.pop(incident_id, None)
        self.holding.pop(incident_id, None)
        return self.held.pop(incident_id, None)

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
under its own version, above the reserved ones. While records are held back to be published, every
record made after the first of them waits behind it (`pending`) and the watermark sent downstream waits
at it (`held_back`): the replaying worker's batches are not the crashed one's, and the alert stage must
take each record in the order, and at the event time, it was made. Pure; no framework.
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
    """The incidents catching up after a torn write, and the records held back meanwhile.

    Records to be published by an announced catch-up wait in `pending` with every record made after
    the first of them, in the order made; the prefix no catch-up holds any more goes out. Published
    in that order, a replay that is the batch again reaches the alert stage exactly as the batch would
    have: the stage takes each record at the event time of the one before it, so a held record
    released after later ones of other incidents changed when alerts began."""

    def __init__(self) -> None:
        # incident id → (published content, batch event time µs, publish the record that reaches it)
        self.targets: dict[str, tuple[str, int, bool]] = {}
        self.held: dict[str, Incident] = {}  # incident id → its newest record not published (not announced)
        self.spans: dict[str, tuple[int, int]] = {}  # incident id → (version before its batch, version reserved)
        self.pending: list[Incident] = []  # since the first record held back to be published, in order
        self.waiting: set[str] = set()  # announced incidents with records in `pending`, not settled

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

    def passed(self, records: list[Incident]) -> list[Incident]:
        """The records to publish now, in the order made: those of incidents catching up are held
        back; one with the published content ends its catch-up (published only if announced, with the
        records before it under the reserved versions when the replay is the batch again)."""
        if not self.targets:
            return records
        for record in records:
            iid = record.incident_id
            target = self.targets.get(iid)
            if target is None:
                self.pending.append(record)
            elif record_content(record) == target[0]:
                if target[2]:
                    self._settle(iid, record)
                self._end(iid)
            elif target[2]:
                self.pending.append(record)
                self.waiting.add(iid)
            else:
                self.held[iid] = record
        return self._release()

    def _settle(self, iid: str, reaching: Incident) -> None:
        """The records `iid` held back, then `reaching`: the batch's again under the versions it
        reserved when the replay has as many, else `reaching` alone."""
        held = sum(1 for record in self.pending if record.incident_id == iid)
        span = self.spans.get(iid)
        if span is not None and held + 1 == span[1] - span[0]:
            versions = iter(range(span[0] + 1, span[1] + 1))
            self.pending = [
                record.model_copy(update={"version": next(versions)}) if record.incident_id == iid else record
                for record in self.pending
            ]
            self.pending.append(reaching.model_copy(update={"version": next(versions)}))
        else:
            self.pending = [record for record in self.pending if record.incident_id != iid]
            self.pending.append(reaching)
        self.waiting.discard(iid)

    def _release(self) -> list[Incident]:
        """The prefix of `pending` up to the first record of an incident still held back."""
        cut = next((n for n, record in enumerate(self.pending) if record.incident_id in self.waiting), len(self.pending))
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def held_back(self) -> datetime | None:
        """The event time of the first record held back: the watermark sent downstream waits there,
        so the alert stage takes it at the event time it was made, as an uncrashed run's would."""
        return taken_at(self.pending[0]) if self.pending else None

    def overdue(self, watermark_us: int | None) -> list[Incident]:
        """Once event time has passed a torn batch's, its incidents that never came back to their
        published content publish what they are now (their newest record, where it was made)."""
        if not self.targets or watermark_us is None:
            return []
        ended: list[Incident] = []
        for iid in [iid for iid, (_, until_us, _) in self.targets.items() if watermark_us > until_us]:
            if iid in self.waiting:  # its newest record stays where it was made, the rest go
                newest = max(n for n, record in enumerate(self.pending) if record.incident_id == iid)
                self.pending = [record for n, record in enumerate(self.pending) if record.incident_id != iid or n == newest]
                self.waiting.discard(iid)
            elif iid in self.held:
                ended.append(self.held[iid])
            self._end(iid)
        self.pending.extend(sorted(ended, key=lambda record: record.status not in GONE))  # as the shell orders
        return self._release()

    def _end(self, incident_id: str) -> None:
        del self.targets[incident_id]
        self.spans.pop(incident_id, None)
        self.held.pop(incident_id, None)

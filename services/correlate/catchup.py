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
reservation missing was not published: its incidents count on and publish as before. Pure; no
framework.
"""

from __future__ import annotations

from collections.abc import Iterable
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


class CatchUp:
    """The incidents catching up after a torn write, and their held-back records."""

    def __init__(self) -> None:
        # incident id → (published content, batch event time µs, publish the record that reaches it)
        self.targets: dict[str, tuple[str, int, bool]] = {}
        self.held: dict[str, Incident] = {}  # incident id → its newest record not published

    def __bool__(self) -> bool:
        return bool(self.targets)

    def expect(self, incident_id: str, published: str, until_us: int, announce: bool = False) -> None:
        """`announce`: the records may not have gone out, so the one reaching `published` is sent."""
        self.targets[incident_id] = (published, until_us, announce)

    def passed(self, records: list[Incident]) -> list[Incident]:
        """The records to publish: all but those of incidents catching up, which are held back; one
        with the published content ends the catch-up, and is published only if announced."""
        if not self.targets:
            return records
        out: list[Incident] = []
        for record in records:
            target = self.targets.get(record.incident_id)
            if target is None:
                out.append(record)
            elif record_content(record) == target[0]:
                del self.targets[record.incident_id]
                self.held.pop(record.incident_id, None)
                if target[2]:
                    out.append(record)
            else:
                self.held[record.incident_id] = record
        return out

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
        return self.held.pop(incident_id, None)

"""When a report is revised or retracted, what is left of its incident (docs/link-rule.md, "Revisions").

Pure. An incident is a connected component of the link rule; taking one report out can leave it in
several pieces. Each piece gets its link tree rebuilt and a name: the piece holding the incident's
earliest report keeps the incident's id; every other piece is named after its own earliest report,
as if that report had founded it, so the same reports always give the same names.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from services.correlate.fold import incident_id
from services.correlate.link import HeldReport, Link, LinkRule

_order = operator.attrgetter("order")


def founding_id(ceasefire_id: str, source: str, report_id: str, revision: int) -> str:
    """The id an incident founded by this revision of a report gets (revision 1: as ever; a later
    revision must not take the id of the incident its first revision founded, which may live on)."""
    return incident_id(ceasefire_id, source, report_id if revision == 1 else f"{report_id}\x1f{revision}")


def split(members: list[HeldReport], rule: LinkRule) -> list[list[HeldReport]]:
    """The connected components of the link rule among `members`, each sorted, with its link tree
    rebuilt: its first report links to nothing, every other one to its best-ranked link among the
    reports attached before it (attached in publication order, pass after pass)."""
    unplaced = sorted(members, key=_order)
    pieces: list[list[HeldReport]] = []
    while unplaced:
        root = unplaced.pop(0)
        root.unlink()
        piece = [root]
        grew = True
        while grew and unplaced:
            grew, left = False, []
            for report in unplaced:
                best: tuple[HeldReport, Link] | None = None
                for other in piece:
                    link = rule.explain(report, other)
                    if link.linked and (best is None or link.rank < best[1].rank):
                        best = (other, link)
                if best is None:
                    left.append(report)
                else:
                    report.join(*best)
                    piece.append(report)
                    grew = True
            unplaced = left
        pieces.append(sorted(piece, key=_order))
    return pieces


def piece_ids(ceasefire_id: str, kept: str, pieces: list[list[HeldReport]], is_open: Callable[[str], bool]) -> list[str]:
    """A name for each piece (`pieces` sorted by their earliest report): the first keeps `kept`."""
    names = [kept] if pieces else []
    for piece in pieces[1:]:
        first = piece[0]
        name = founding_id(ceasefire_id, first.source, first.report_id, first.revision)
        if name == kept or is_open(name) or name in names:  # cannot be, short of a hash collision: never share
            name = incident_id(ceasefire_id, first.source, f"{first.report_id}\x1fsplit\x1f{kept}")
        names.append(name)
    return names

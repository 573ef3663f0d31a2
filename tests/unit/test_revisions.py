"""Revisions and retractions in correlation: a newer revision replaces its report everywhere it counted."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.ceasefire import Ceasefire, Registry
from schemas.incident import Incident
from schemas.report import AcceptedReport
from services.correlate.revise import founding_id
from services.correlate.state import Correlator
from tests.unit.test_correlator import accepted, apply, pk


@pytest.fixture
def ceasefire(registry: Registry) -> Ceasefire:
    found = registry.get("in-pk-2025-05-10")
    assert found is not None
    return found


def at_lat(lat: float) -> dict[str, Any]:
    return {"location": {"lat": lat, "lon": 74.09, "precision_km": 1}}


def revised(report: AcceptedReport, revision: int, **changes: Any) -> AcceptedReport:
    doc = report.model_dump() | {"revision": revision} | changes
    return AcceptedReport.model_validate(doc)


def members(record: Incident) -> list[tuple[str, int]]:
    return [(r.report_id, r.revision) for r in record.reports]


def test_a_casualty_figure_revised_up_reaches_the_incident(ceasefire: Correlator) -> None:
    correlator = Correlator(ceasefire)
    first = accepted("a", 0, casualties={"killed": 2})
    [one] = correlator.add(first)
    [two] = correlator.add(pk("b", 5))
    [three] = correlator.add(revised(first, 2, casualties={"killed": 5, "injured": 1}))
    assert one.incident_id == two.incident_id == three.incident_id
    assert three.version == 3 and three.status == "mutual"
    assert (two.casualties.killed_high, three.casualties.killed_high) == (2, 5)  # b says 0 throughout
    assert members(three) == [("a", 2), ("b", 1)]
    assert correlator.add(revised(first, 2, casualties={"killed": 5, "injured": 1})) == []  # again: nothing
    assert correlator.add(first) == []  # the older revision, late: nothing


def test_a_moved_report_leaves_and_its_incident_splits_where_it_bridged(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    # a (33.70) — bridge (33.77) — c (33.84): 7.8 km apart each, 15.6 km end to end (limit 10 + 1 + 1)
    a, bridge, c = accepted("a", 0, **at_lat(33.70)), accepted("bridge", 5, **at_lat(33.77)), accepted("c", 10, **at_lat(33.84))
    for report in (a, bridge, c):
        records = correlator.add(report)
    whole = records[0]
    assert members(whole) == [("a", 1), ("bridge", 1), ("c", 1)]
    out = correlator.add(revised(bridge, 2, location={"lat": 34.5, "lon": 74.25, "precision_km": 1}))  # to Kupwara
    by_id = {r.incident_id: r for r in out}
    assert by_id[whole.incident_id].version == whole.version + 1
    assert members(by_id[whole.incident_id]) == [("a", 1)]  # the earliest report keeps the incident's id
    c_piece = founding_id(ceasefire.id, "in.army", "c", 1)
    assert members(by_id[c_piece]) == [("c", 1)] and by_id[c_piece].version == 1
    moved = founding_id(ceasefire.id, "in.army", "bridge", 2)
    assert members(by_id[moved]) == [("bridge", 2)]
    assert {r.status for r in out} == {"claimed"}


def test_a_retraction_dissolves_an_incident_it_leaves_empty(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    lone = accepted("lone", 0)
    [first] = correlator.add(lone)
    [last] = correlator.add(revised(lone, 2, status="retracted", retraction_reason="filed in error"))
    assert (last.incident_id, last.version, last.status) == (first.incident_id, 2, "withdrawn")
    assert list(correlator.incidents()) == []
    assert correlator.add(lone) == []  # a retraction is final: the original, late, changes nothing


def test_a_retraction_before_its_report_keeps_the_report_out(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    lone = accepted("lone", 0)
    assert correlator.add(revised(lone, 2, status="retracted")) == []
    assert correlator.add(lone) == []
    assert list(correlator.incidents()) == []


def test_a_revised_report_that_joins_another_incident_ends_its_own_as_merged(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    alone, other = accepted("alone", 0, **at_lat(34.5)), accepted("other", 5, **at_lat(33.77))
    [mine] = correlator.add(alone)
    [theirs] = correlator.add(other)
    out = correlator.add(revised(alone, 2, **at_lat(33.78)))
    assert [(r.incident_id, r.status) for r in out] == [(theirs.incident_id, "claimed"), (mine.incident_id, "merged")]
    assert out[1].merged_into == theirs.incident_id and out[1].version == 2
    assert members(out[0]) == [("alone", 2), ("other", 1)]


def test_revisions_survive_a_rebuild_from_the_stored_entries(ceasefire: Ceasefire) -> None:
    correlator, store = Correlator(ceasefire), {}
    first = accepted("a", 0, casualties={"killed": 1})
    for report in (first, pk("b", 5), revised(first, 2, casualties={"killed": 3})):
        correlator.add(report)
        apply(store, correlator.take_changes())
    rebuilt = Correlator(ceasefire, store.items())
    assert [i.model_dump_json() for i in rebuilt.incidents()] == [i.model_dump_json() for i in correlator.incidents()]
    assert rebuilt.add(revised(first, 2, casualties={"killed": 3})) == []  # the held revision is known after a restart


def test_explain_lists_each_revised_report_s_revisions(ceasefire: Ceasefire) -> None:
    from rich.console import Console

    from services.console.views import Revisions, revision_history, revisions_seen

    correlator = Correlator(ceasefire)
    first = accepted("a", 0, casualties={"killed": 1}, **at_lat(33.70))
    records = [*correlator.add(first), *correlator.add(pk("b", 5, **at_lat(33.72)))]
    records += correlator.add(revised(first, 2, casualties={"killed": 4}, **at_lat(33.70)))
    history: Revisions = {}
    for record in records:
        revisions_seen(history, record)
    versions = [r for r in records if r.incident_id == records[-1].incident_id]
    tree = revision_history(history, versions)
    assert tree is not None
    console = Console(width=200, record=True)
    console.print(tree)
    text = console.export_text()
    assert "in.army/a" in text and "pk.ispr/b" not in text  # only what was revised
    assert "r1:" in text and "killed 1" in text and "r2:" in text and "killed 4" in text


def test_two_revisions_held_together_are_both_ordered_and_the_newer_wins(ceasefire: Ceasefire) -> None:
    """The event-time order holds reports by (source, report_id, revision): a correction that arrives
    while its first revision is still held is not dropped as a re-delivery of it."""
    from datetime import timedelta

    from schemas.ingest import Mark

    correlator = Correlator(ceasefire, upstreams=1)
    first = accepted("a", 0, casualties={"killed": 1})
    first = first.model_copy(update={"ordered_at": first.observed_at})
    for report in (revised(first, 2, casualties={"killed": 6}), first):  # any order: the same result
        correlator.order.hold(report)
    correlator.order.mark("0", Mark(at=first.observed_at + timedelta(minutes=1)))
    published = [record for report in correlator.order.release() for record in correlator.add(report)]
    assert [(r.version, r.casualties.killed_high, members(r)) for r in published] == [(1, 1, [("a", 1)]), (2, 6, [("a", 2)])]

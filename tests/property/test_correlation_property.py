"""Streaming correlation equals the batch definition: connected components of the pairwise link rule.

The oracle below is written from docs/link-rule.md, not from services/correlate: every pair is checked,
components come from a plain union-find. Reports arrive in any order within the allowed lateness.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.ceasefire import NEUTRAL
from schemas.incident import Incident
from schemas.report import AcceptedReport
from services.correlate.state import Correlator
from tests.support import batch
from tests.support.ceasefires import three_parties

START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
# Three parties, so that the parties clause can also fail; sectors overlap one another.
CEASEFIRE = three_parties("abc-test", east=True)
SOURCES = [("a.army", "A"), ("a.police", "A"), ("b.army", "B"), ("c.army", "C"), ("obs.un", NEUTRAL)]
Key = tuple[str, str]


# -- the batch definition (tests/support/batch.py, written independently of services/correlate) --------


def links(a: AcceptedReport, b: AcceptedReport) -> bool:
    return batch.links(a, b, CEASEFIRE)


def components(reports: list[AcceptedReport]) -> set[frozenset[Key]]:
    return batch.components(reports, CEASEFIRE)


# -- generated reports --------------------------------------------------------------------------------


@st.composite
def a_report(draw: st.DrawFn, n: int, minutes: st.SearchStrategy[int]) -> AcceptedReport:
    source, party = draw(st.sampled_from(SOURCES))
    accused = draw(st.sampled_from([None, *(p for p in ("A", "B", "C") if p != party)]))
    where: dict[str, Any] = {}
    kind = draw(st.sampled_from(["point", "point", "sector", "both"]))
    if kind in ("point", "both"):
        where["lat"] = 33.0 + draw(st.integers(0, 40)) / 100  # a 0.01-degree lattice over ~45 km
        where["lon"] = 74.0 + draw(st.integers(0, 40)) / 100
        where["precision_km"] = draw(st.sampled_from([0.5, 1.0, 2.0, 5.0]))
    if kind in ("sector", "both"):
        where["sector"] = draw(st.sampled_from(["North", "South", "East"]))
    minute = draw(minutes)
    doc = {
        "report_id": f"r{n}",
        "source": source,
        "source_party": party,
        "accused_party": accused,
        "ceasefire_id": CEASEFIRE.id,
        "observed_at": START + timedelta(minutes=minute),
        "location": where,
        "violation_type": draw(st.sampled_from(["small_arms", "mortar", "drone"])),
        "ingested_at": START,
    }
    return AcceptedReport.model_validate(doc)


@st.composite
def report_sets(draw: st.DrawFn, most: int, minutes: st.SearchStrategy[int]) -> list[AcceptedReport]:
    count = draw(st.integers(1, most))
    return [draw(a_report(n, minutes)) for n in range(count)]


# Bursts about the allowed lateness plus a window apart, where eviction would do harm if it were wrong.
BURSTS = st.one_of(st.integers(0, 7 * 60), st.sampled_from([0, 6 * 60, 6 * 60 + 30]).flatmap(
    lambda anchor: st.integers(anchor, anchor + 40)
))


# -- checks --------------------------------------------------------------------------------------------


def last_records(published: list[Incident]) -> dict[str, Incident]:
    """The newest record of every incident id; versions must go up one at a time."""
    last: dict[str, Incident] = {}
    for record in published:
        previous = last.get(record.incident_id)
        assert record.version == (1 if previous is None else previous.version + 1)
        last[record.incident_id] = record
    return last


def check_link_tree(incident: Incident, by_key: dict[Key, AcceptedReport]) -> None:
    """Every report but the founder names a report it links to; following the links ends at the founder."""
    members = {(r.source, r.report_id): r for r in incident.reports}
    roots = [k for k, r in members.items() if r.linked_to is None]
    assert len(roots) == 1
    for key, record in members.items():
        seen = {key}
        while record.linked_to is not None:
            assert record.linked_to in members
            assert links(by_key[(record.source, record.report_id)], by_key[record.linked_to])
            record = members[record.linked_to]
            assert (record.source, record.report_id) not in seen
            seen.add((record.source, record.report_id))


def deliver(correlator: Correlator, order: list[AcceptedReport], evictions: list[bool]) -> list[Incident]:
    published: list[Incident] = []
    for report, evict in zip(order, evictions, strict=False):
        out = correlator.add(report)
        assert out and out[0].status != "merged"
        assert all(m.merged_into == out[0].incident_id for m in out[1:])
        published.extend(out)
        if evict:
            correlator.evict()
    for report in order[len(evictions) :]:
        published.extend(correlator.add(report))
    return published


# -- properties ------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), reports=report_sets(most=30, minutes=st.integers(0, 180)))
def test_any_order_gives_the_batch_components(data: st.DataObject, reports: list[AcceptedReport]) -> None:
    order = data.draw(st.permutations(reports))
    correlator = Correlator(CEASEFIRE)
    published = deliver(correlator, order, [])
    expected = components(reports)

    last = last_records(published)
    open_now = [r for r in last.values() if r.status != "merged"]
    assert {frozenset((x.source, x.report_id) for x in r.reports) for r in open_now} == expected
    held = sorted(i.model_dump_json() for i in correlator.incidents())
    assert held == sorted(r.model_dump_json() for r in open_now)
    by_key = {r.identity: r for r in reports}
    for incident in open_now:
        check_link_tree(incident, by_key)
        assert not incident.late


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), reports=report_sets(most=25, minutes=st.integers(0, 120)))
def test_merges_never_lose_a_report_and_re_delivery_changes_nothing(
    data: st.DataObject, reports: list[AcceptedReport]
) -> None:
    order = data.draw(st.permutations(reports))
    correlator = Correlator(CEASEFIRE)
    store: dict[str, str] = {}
    holder: dict[Key, str] = {}  # which open incident holds each report, as published
    for report in order:
        out = correlator.add(report)
        survivor, merged = out[0], out[1:]
        involved = {m.incident_id for m in merged} | {survivor.incident_id}
        before = {k for k, iid in holder.items() if iid in involved}
        now = {(x.source, x.report_id) for x in survivor.reports}
        assert before | {report.identity} == now  # the survivor holds everything it and the absorbed held
        for key in now:
            holder[key] = survivor.incident_id
        for key, value in correlator.take_changes().items():
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value

    again = data.draw(st.lists(st.sampled_from(reports), max_size=5))
    before_incidents = sorted(i.model_dump_json() for i in correlator.incidents())
    for report in again:
        assert correlator.add(report) == []
    assert correlator.take_changes() == {}
    assert sorted(i.model_dump_json() for i in correlator.incidents()) == before_incidents
    rebuilt = Correlator(CEASEFIRE, store.items())
    assert sorted(i.model_dump_json() for i in rebuilt.incidents()) == before_incidents


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), reports=report_sets(most=12, minutes=BURSTS))
def test_eviction_does_not_change_results_within_the_allowed_lateness(
    data: st.DataObject, reports: list[AcceptedReport]
) -> None:
    lateness = timedelta(hours=CEASEFIRE.link.allowed_lateness_hours)
    # Each report arrives up to the allowed lateness after it was observed: never late.
    most = int(lateness.total_seconds() // 60)
    delay = st.one_of(st.just(0), st.just(most), st.integers(most - 60, most), st.integers(0, most))  # edges
    delays = data.draw(st.lists(delay, min_size=len(reports), max_size=len(reports)))
    arrivals = sorted(
        zip(delays, reports, strict=True), key=lambda pair: pair[1].observed_at + timedelta(minutes=pair[0])
    )
    order = [r for _, r in arrivals]
    evictions = data.draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    published = deliver(Correlator(CEASEFIRE), order, evictions)
    assert published == deliver(Correlator(CEASEFIRE), order, [])  # eviction changes no record at all
    last = last_records(published)
    open_now = [r for r in last.values() if r.status != "merged"]
    final = {frozenset((x.source, x.report_id) for x in r.reports) for r in open_now}
    assert final == components(reports)
    assert not any(r.late for r in published)

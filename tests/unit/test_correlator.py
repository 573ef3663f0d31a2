"""The incident fold and the Correlator's state: lists of reports in, incident records out."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import orjson
import pytest

from schemas.ceasefire import Ceasefire, Registry, great_circle_km
from schemas.incident import Incident, Severity
from schemas.report import AcceptedReport
from services.correlate.state import Correlator, version_entries
from services.runtime.settings import PROJECT_ROOT
from tests.support.reports import START, at, report

HOUR = 60


@pytest.fixture
def ceasefire(registry: Registry) -> Ceasefire:
    found = registry.get("in-pk-2025-05-10")
    assert found is not None
    return found


def accepted(report_id: str, minute: float = 0, **overrides: Any) -> AcceptedReport:
    doc = report(report_id=report_id, observed_at=at(minute), **overrides)
    return AcceptedReport.model_validate({**doc, "ingested_at": at(minute + 1)})


def pk(report_id: str, minute: float = 0, **overrides: Any) -> AcceptedReport:
    side = {"source": "pk.ispr", "source_party": "PK", "accused_party": "IN"}
    return accepted(report_id, minute, **{**side, **overrides})


def un(report_id: str, minute: float = 0, **overrides: Any) -> AcceptedReport:
    side = {"source": "un.unmogip", "source_party": "NEUTRAL", "accused_party": ...}
    return accepted(report_id, minute, **{**side, **overrides})


def far(lat_offset: float) -> dict[str, Any]:
    return {"location": {"lat": 33.0 + lat_offset, "lon": 74.5, "precision_km": 1}}


def apply(store: dict[str, str], changes: dict[str, str | None]) -> None:
    for key, value in changes.items():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value


def one(records: list[Incident]) -> Incident:
    assert len(records) == 1
    return records[0]


# -- identity and version ---------------------------------------------------------------------------


def test_the_first_report_opens_an_incident_named_after_it(ceasefire: Ceasefire) -> None:
    incident = one(Correlator(ceasefire).add(accepted("a")))
    expected = hashlib.blake2b(f"{ceasefire.id}\x1fin.army\x1fa".encode(), digest_size=8).hexdigest()
    assert incident.incident_id == "inc-" + expected
    assert (incident.version, incident.status, incident.report_count) == (1, "claimed", 1)
    assert incident.reports[0].linked_to is None
    assert incident.first_observed_at == incident.last_observed_at == START


def test_a_linked_report_joins_and_bumps_the_version(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    first = one(correlator.add(accepted("a")))
    second = one(correlator.add(accepted("b", 20)))
    assert second.incident_id == first.incident_id
    assert second.version == 2
    joined = next(r for r in second.reports if r.report_id == "b")
    assert joined.linked_to == ("in.army", "a")
    assert (joined.distance_km, joined.gap_minutes) == (0.0, 20.0)
    assert second.last_observed_at == START + timedelta(minutes=20)


def test_reports_are_listed_by_observed_at_then_source_then_id(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    for record in (accepted("z", 10), pk("b", 5), accepted("y", 5), accepted("a", 10)):
        incident = one(correlator.add(record))
    order = [(r.observed_at, r.source, r.report_id) for r in incident.reports]
    assert order == sorted(order)
    assert [r.report_id for r in incident.reports] == ["y", "b", "a", "z"]


# -- status -----------------------------------------------------------------------------------------


def test_one_party_accusing_is_claimed(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a"))
    assert one(correlator.add(accepted("b", source="in.bsf"))).status == "claimed"


def test_both_parties_accusing_each_other_is_mutual(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a"))
    incident = one(correlator.add(pk("b", 5)))
    assert incident.status == "mutual"
    assert (incident.reporting_parties, incident.accused_parties) == (["IN", "PK"], ["IN", "PK"])


def test_a_neutral_source_corroborates_and_wins(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a"))
    correlator.add(pk("b", 5))
    incident = one(correlator.add(un("c", 10)))
    assert incident.status == "corroborated"
    assert incident.reporting_parties == ["IN", "NEUTRAL", "PK"]


def test_unattributed_reports_of_one_party_are_claimed(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a", accused_party=...))
    incident = one(correlator.add(accepted("b", 5, accused_party=...)))
    assert incident.status == "claimed"
    assert incident.accused_parties == []


def test_an_unattributed_report_from_the_other_side_is_not_an_accusation(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a"))
    assert one(correlator.add(pk("b", 5, accused_party=...))).status == "claimed"


# -- severity, casualties, centre --------------------------------------------------------------------


def test_severity_is_the_highest_rung(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a", violation_type="small_arms"))
    correlator.add(accepted("b", 1, violation_type="drone"))
    incident = one(correlator.add(accepted("c", 2, violation_type="artillery")))
    assert incident.severity == Severity.DRONE
    assert incident.violation_types == ["artillery", "drone", "small_arms"]


def test_casualties_are_a_range_never_a_sum(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a", casualties={"killed": 2}))
    correlator.add(pk("b", 1, casualties={"killed": 5}))
    incident = one(correlator.add(accepted("c", 2, casualties=...)))
    c = incident.casualties
    assert (c.killed_low, c.killed_high, c.injured_low, c.injured_high) == (2, 5, None, None)


def test_zero_killed_is_a_figure(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a", casualties={"killed": 0, "injured": 3}))
    c = one(correlator.add(accepted("b", 1, casualties={"killed": 4, "injured": 3}))).casualties
    assert (c.killed_low, c.killed_high, c.injured_low, c.injured_high) == (0, 4, 3, 3)


def test_centre_is_weighted_by_inverse_squared_precision(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a", location={"lat": 33.0, "lon": 74.0, "precision_km": 1}))
    incident = one(correlator.add(accepted("b", 1, location={"lat": 33.1, "lon": 74.0, "precision_km": 2})))
    centre = incident.location
    assert centre is not None
    # weights 1 and 1/4: four fifths of the way to the precise report
    assert centre.lat == pytest.approx(33.02, abs=1e-4)
    assert centre.lon == pytest.approx(74.0, abs=1e-9)
    farthest = great_circle_km(centre.lat, centre.lon, 33.1, 74.0) + 2
    assert centre.radius_km == pytest.approx(farthest, abs=1e-3)


def test_an_incident_of_sector_only_reports_has_no_centre(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a", location={"sector": "Poonch"}))
    incident = one(correlator.add(accepted("b", 3, location={"sector": "Poonch"})))
    assert incident.location is None
    assert incident.sectors == ["Poonch"]
    assert incident.reports[1].distance_km is None


# -- merges ------------------------------------------------------------------------------------------


def test_a_bridging_report_merges_into_the_earliest_incident(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    later = one(correlator.add(accepted("late-one", 40)))
    earlier = one(correlator.add(accepted("early-one", 0)))  # opened second, observed first
    survivor, merged = correlator.add(pk("bridge", 20))
    assert survivor.incident_id == earlier.incident_id
    assert survivor.version == 2
    assert {r.report_id for r in survivor.reports} == {"early-one", "bridge", "late-one"}
    assert survivor.status == "mutual"
    assert merged.incident_id == later.incident_id
    assert (merged.status, merged.merged_into, merged.version) == ("merged", earlier.incident_id, 2)
    assert [r.report_id for r in merged.reports] == ["late-one"]
    assert list(correlator.incidents()) == [survivor]


def test_the_merge_is_explained_by_the_links(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a", 0))
    correlator.add(accepted("c", 40))
    correlator.add(accepted("d", 60))  # joins c's incident, linked to c
    survivor, _ = correlator.add(pk("b", 20))
    links = {r.report_id: r.linked_to for r in survivor.reports}
    # b joined a's incident; c, the end of the absorbed incident next to b, now hangs from b
    assert links == {"a": None, "b": ("in.army", "a"), "c": ("pk.ispr", "b"), "d": ("in.army", "c")}
    c = next(r for r in survivor.reports if r.report_id == "c")
    assert (c.gap_minutes, c.distance_km) == (20.0, 0.0)


def test_a_report_bridging_three_incidents_merges_them_all(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    west = {"location": {"lat": 33.0, "lon": 74.0, "precision_km": 1}}
    east = {"location": {"lat": 33.0, "lon": 74.2, "precision_km": 1}}  # about 18.7 km from west
    north = {"location": {"lat": 33.15, "lon": 74.1, "precision_km": 1}}
    ids = [one(correlator.add(accepted(name, minute, **where))).incident_id
           for name, minute, where in (("w", 5, west), ("e", 0, east), ("n", 10, north))]
    middle = {"location": {"lat": 33.05, "lon": 74.1, "precision_km": 1}}
    survivor, *merged = correlator.add(accepted("m", 5, **middle))
    assert survivor.incident_id == ids[1]  # e was observed first
    assert sorted(m.incident_id for m in merged) == sorted([ids[0], ids[2]])
    assert all(m.merged_into == ids[1] for m in merged)
    assert survivor.report_count == 4


# -- re-delivery, lateness -------------------------------------------------------------------------


def test_re_delivery_changes_nothing(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a"))
    correlator.add(pk("b", 5))
    correlator.take_changes()
    before = list(correlator.incidents())
    assert correlator.add(pk("b", 5)) == []
    assert correlator.take_changes() == {}
    assert list(correlator.incidents()) == before


def test_a_report_older_than_the_allowed_lateness_is_late_but_still_links(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    opened = one(correlator.add(accepted("a", 0)))
    correlator.add(accepted("far-later", 6 * HOUR + 11, **far(1)))
    assert correlator.watermark == START + timedelta(minutes=6 * HOUR + 11)
    incident = one(correlator.add(accepted("b", 10)))  # 10 minutes older than watermark - 6 h... by 1 minute
    assert incident.incident_id == opened.incident_id
    assert incident.late
    assert [r.late for r in incident.reports] == [False, True]


def test_exactly_the_allowed_lateness_behind_is_on_time(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("ahead", 6 * HOUR + 10, **far(1)))
    incident = one(correlator.add(accepted("b", 10)))
    assert not incident.late


# -- eviction ----------------------------------------------------------------------------------------


def test_eviction_drops_incidents_that_can_no_longer_link(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    old = one(correlator.add(accepted("a", 0)))
    kept = one(correlator.add(accepted("b", 20, **far(1))))
    correlator.add(accepted("c", 6 * HOUR + 40, **far(2)))  # horizon = 10 minutes after START
    correlator.take_changes()
    assert correlator.evict() == [old.incident_id]
    newest = one(correlator.add(accepted("d", 6 * HOUR + 41, **far(2))))
    assert {i.incident_id for i in correlator.incidents()} == {kept.incident_id, newest.incident_id}
    changes = correlator.take_changes()
    assert changes["r\x1fin.army\x1fa"] is None
    assert changes["i\x1f" + old.incident_id] is None
    assert correlator.evict() == []


def test_reports_before_the_horizon_are_not_held_while_the_watermark_stands_still(ceasefire: Ceasefire) -> None:
    """A partition catching up after the others (found in a soak: deduplication drained one by-source
    partition days behind the rest) delivers reports from before the horizon while the watermark
    stands still. They were held until the watermark moved on (the worker at 905 MB); evicting them
    as they come (`stale`, as the shell does after each batch) holds none and changes no record,
    since nothing can link to a report before the horizon."""
    held_on, evicting = Correlator(ceasefire), Correlator(ceasefire)
    for correlator in (held_on, evicting):
        correlator.add(accepted("ahead", 3 * 24 * HOUR))
        correlator.evict()
    assert not evicting.stale()
    for n in range(300):  # a burst two days back, in pairs that would link if they could
        late = accepted(f"late-{n}", 24 * HOUR + n // 2 * 3, **far(n // 2 * 0.2))
        assert held_on.add(late) == evicting.add(late)
        if evicting.stale():
            evicting.evict()
    assert len(held_on.reports) == 301
    assert len(evicting.reports) == 1 and not evicting.stale()
    assert all(key in evicting.seen for key in held_on.reports if key[1] != "ahead")  # a re-delivery: nothing


def test_eviction_keeps_what_an_on_time_report_can_still_link_to(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    opened = one(correlator.add(accepted("a", 0)))
    correlator.add(accepted("ahead", 6 * HOUR + 30, **far(1)))  # watermark - 6 h = 30 minutes after a
    assert correlator.evict() == []
    incident = one(correlator.add(accepted("b", 30)))  # exactly the allowed lateness behind: on time
    assert (incident.incident_id, incident.late) == (opened.incident_id, False)


def test_eviction_keeps_reports_of_an_incident_that_is_still_open(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("a", 0))
    correlator.add(accepted("b", 30))
    correlator.add(accepted("c", 6 * HOUR + 40, **far(1)))
    assert correlator.evict() == []  # b (20 minutes after the horizon) keeps the incident open
    incident = one(correlator.add(accepted("d", 55)))
    assert [r.report_id for r in incident.reports] == ["a", "b", "d"]


def test_evicted_reports_no_longer_point_at_their_incident(ceasefire: Ceasefire) -> None:
    # A held report names the incident holding it; eviction must cut that link, or an evicted
    # incident and its reports would wait for the garbage collector's full passes to be freed.
    correlator = Correlator(ceasefire)
    old = one(correlator.add(accepted("a", 0)))
    correlator.add(pk("b", 5))
    gone = list(correlator.open[old.incident_id].members)
    correlator.add(accepted("c", 6 * HOUR + 40, **far(2)))
    assert correlator.evict() == [old.incident_id]
    assert [m.incident for m in gone] == [None, None]
    assert all(h.incident is correlator.open[h.incident.incident_id] for h in correlator.reports.values())


def test_sector_only_reports_are_still_found_once_older_ones_are_dropped(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    correlator.add(accepted("early", 0, location={"sector": "Poonch"}))
    correlator.add(accepted("ahead", 7 * HOUR + 10, **far(2)))
    correlator.evict()  # horizon 40 minutes after the early sector-only report: its bucket goes
    assert correlator.index.unlocated == 0
    late_sector = one(correlator.add(accepted("s", 7 * HOUR + 15, location={"sector": "Poonch"})))
    assert correlator.index.unlocated == 1
    inside = {"location": {"lat": 33.77, "lon": 74.09, "precision_km": 1}}  # Poonch's centre
    incident = one(correlator.add(accepted("p", 7 * HOUR + 20, **inside)))
    assert incident.incident_id == late_sector.incident_id
    assert [r.report_id for r in incident.reports] == ["s", "p"]


def test_memory_stays_bounded_on_an_endless_stream(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    held, indexed, open_incidents = [], [], []
    for n in range(1200):  # a report every 5 minutes for 4 days; the place moves every hour
        minute = 5 * n
        where = {"location": {"lat": 32.0 + (minute // HOUR) % 20 * 0.2, "lon": 74.0, "precision_km": 1}}
        correlator.add(accepted(f"r{n}", minute, **where))
        if n % 50 == 49:
            correlator.evict()
            held.append(len(correlator.reports))
            indexed.append(len(correlator.index))
            open_incidents.append(len(correlator.open))
    # retention 6.5 h; an open incident keeps its reports up to an hour older; the index buckets are 30 min
    assert max(held) <= (6.5 * HOUR + HOUR) / 5 + 1
    assert max(indexed) <= (6.5 * HOUR + 30) / 5 + 1
    assert max(open_incidents) <= 8


# -- persistence --------------------------------------------------------------------------------------


def _stream() -> list[AcceptedReport]:
    return [
        accepted("a", 0),
        accepted("c", 40),
        pk("b", 20),
        un("u", 25, location={"sector": "Poonch"}),
        accepted("x", 2 * HOUR, **far(1)),
        accepted("y", 7 * HOUR, **far(2)),
    ]


def test_a_rebuilt_state_equals_the_live_one(ceasefire: Ceasefire) -> None:
    live, store = Correlator(ceasefire), {}
    for record in _stream():
        live.add(record)
        apply(store, live.take_changes())
    live.evict()
    apply(store, live.take_changes())
    rebuilt = Correlator(ceasefire, store.items())
    assert sorted(rebuilt.incidents(), key=lambda i: i.incident_id) == sorted(
        live.incidents(), key=lambda i: i.incident_id
    )
    assert rebuilt.watermark == live.watermark
    late = accepted("late", 6 * HOUR + 50, **far(2))
    assert rebuilt.add(late) == live.add(late)
    assert rebuilt.take_changes() == live.take_changes()


def test_a_crash_before_the_changes_are_written_reproduces_the_same_records(ceasefire: Ceasefire) -> None:
    live, store = Correlator(ceasefire), {}
    stream = _stream()
    for record in stream[:2]:
        live.add(record)
    apply(store, live.take_changes())
    published = live.add(stream[2])  # the shell publishes these, then dies before writing the changes
    assert Correlator(ceasefire, store.items()).add(stream[2]) == published


# -- the worked example of docs/link-rule.md -------------------------------------------------------


def _block(text: str, marker: str) -> str:
    found = re.search(rf"<!-- example:{marker} -->\n```\w+\n(.*?)```", text, re.DOTALL)
    assert found is not None, marker
    return found.group(1)


def test_the_worked_example_in_the_docs_holds(ceasefire: Ceasefire) -> None:
    text = (PROJECT_ROOT / "docs" / "link-rule.md").read_text(encoding="utf-8")
    correlator, outcome = Correlator(ceasefire), []
    for line in _block(text, "reports").splitlines():
        doc = orjson.loads(line)
        doc.update(ceasefire_id=ceasefire.id, ingested_at=doc["observed_at"])
        for record in correlator.add(AcceptedReport.model_validate(doc)):
            outcome.append([
                doc["report_id"], record.incident_id, record.version, record.status, record.merged_into,
                int(record.severity), [r.report_id for r in record.reports],
            ])
    assert outcome == orjson.loads(_block(text, "outcome"))


def test_a_torn_write_never_reuses_a_published_version() -> None:
    """The shell stores the version reservations, publishes, then stores the rest, and may die
    anywhere: whatever prefix was stored, re-processing the batch publishes a version already published
    only with the same content (the batch again, services/correlate/catchup.py), any other above every
    version published (records of a batch whose reservations were torn were never published)."""
    from tests.support.reports import report as report_doc

    ceasefire = _torn_ceasefire()
    docs = [
        report_doc(report_id=f"t{n}", observed_at=f"2025-05-10T12:{n * 5:02d}:00Z", ingested_at="2025-05-10T13:00:00Z")
        for n in range(4)
    ]
    reports = [AcceptedReport.model_validate(d) for d in docs]
    base = Correlator(ceasefire)
    stored = dict(base.take_changes())
    earlier = [i for r in reports[:2] for i in base.add(r)]
    stored.update(base.take_changes())
    published = [i for r in reports[2:] for i in base.add(r)]
    reservations, rest = version_entries(base.take_changes())
    changes = [*reservations.items(), *rest.items()]
    for cut in range(len(changes) + 1):
        entries = dict(stored)
        for key, value in changes[:cut]:
            if value is None:
                entries.pop(key, None)
            else:
                entries[key] = value
        rebuilt = Correlator(ceasefire, entries.items())
        out = earlier + (published if cut >= len(reservations) else [])  # records leave after reservations
        highest = {i.incident_id: i.version for i in sorted(out, key=lambda i: i.version)}
        sent = {(i.incident_id, i.version): i for i in out}
        for incident in (i for r in reports[2:] for i in rebuilt.add(r)):
            again = sent.get((incident.incident_id, incident.version))
            if again is not None:
                assert incident == again, (cut, incident.incident_id, incident.version)
            else:
                assert incident.version > highest.get(incident.incident_id, 0), (cut, incident.incident_id)


def _torn_ceasefire():  # noqa: ANN202 - the shipped registry's ceasefire
    from schemas.ceasefire import load_registry
    from services.runtime.settings import PROJECT_ROOT

    return load_registry(PROJECT_ROOT / "deploy" / "ceasefires.yaml").get("in-pk-2025-05-10")


def test_an_evicted_report_delivered_again_changes_nothing() -> None:
    """Upstream re-emits can bring back a report that eviction already dropped; it must not found a
    second, late incident — before or after a rebuild from the stored entries."""
    from tests.support.reports import report as report_doc

    ceasefire = _torn_ceasefire()
    early = AcceptedReport.model_validate(
        report_doc(report_id="early", observed_at="2025-05-10T12:00:00Z", ingested_at="2025-05-10T12:01:00Z")
    )
    much_later = AcceptedReport.model_validate(
        report_doc(report_id="later", observed_at="2025-05-11T12:00:00Z", ingested_at="2025-05-11T12:01:00Z")
    )
    correlator = Correlator(ceasefire)
    correlator.add(early)
    correlator.add(much_later)
    assert correlator.evict(), "the early incident should be evicted a day later"
    stored = correlator.take_changes()
    assert correlator.add(early) == []
    rebuilt = Correlator(ceasefire, [(k, v) for k, v in stored.items() if v is not None])
    assert rebuilt.add(early) == []

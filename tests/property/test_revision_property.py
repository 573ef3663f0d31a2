"""Revisions and retractions: streaming correlation equals the batch definition applied to the current
revision of every report (tests/support/batch.py `current`), whatever order the revisions arrive in.

A lower revision after a higher one changes nothing; a retraction is the last revision of its report.
Records keep their invariants on the way: versions go up one at a time per incident id (a piece that
revives an absorbed id counts on from its last version), every figure is the fold of the current
reports, the link tree holds, and a rebuild from the stored entries publishes the same incidents.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.incident import Incident
from schemas.report import AcceptedReport
from services.correlate.state import Correlator
from tests.property.test_correlation_property import CEASEFIRE, a_report, check_link_tree, components
from tests.support import batch
from tests.unit.test_correlator import apply
from tests.unit.test_incident_fold import check

Key = tuple[str, str]
GONE = ("merged", "withdrawn")


@st.composite
def revised_streams(draw: st.DrawFn, most: int) -> list[AcceptedReport]:
    """Reports, and for some of them later revisions (new content, same identity), the last of which
    may be a retraction."""
    minutes = st.integers(0, 150)
    originals = [draw(a_report(n, minutes)) for n in range(draw(st.integers(1, most)))]
    stream = list(originals)
    for original in originals:
        for revision in range(2, 2 + draw(st.integers(0, 2))):
            content = draw(a_report(0, minutes))
            stream.append(
                content.model_copy(
                    update={
                        "report_id": original.report_id,
                        "source": original.source,
                        "source_party": original.source_party,
                        "accused_party": content.accused_party if content.accused_party != original.source_party else None,
                        "revision": revision,
                    }
                )
            )
        if draw(st.integers(0, 4)) == 0:
            last = stream[-1] if stream[-1].identity == original.identity else original
            stream.append(last.model_copy(update={"revision": last.revision + 1, "status": "retracted"}))
    return stream


def newest(published: list[Incident]) -> dict[str, Incident]:
    last: dict[str, Incident] = {}
    for record in published:
        previous = last.get(record.incident_id)
        assert record.version == (1 if previous is None else previous.version + 1), record.incident_id
        last[record.incident_id] = record
    return last


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), stream=revised_streams(most=14))
def test_the_current_revisions_give_the_batch_components_in_any_order(data: st.DataObject, stream: list[AcceptedReport]) -> None:
    order = data.draw(st.permutations(stream))
    correlator = Correlator(CEASEFIRE)
    store: dict[str, str] = {}
    published: list[Incident] = []
    for report in order:
        out = correlator.add(report)
        for record in out:
            if record.status not in GONE:
                check(record)
        published.extend(out)
        apply(store, correlator.take_changes())
        if data.draw(st.integers(0, 6)) == 0:  # now and then, the worker restarts from its table
            correlator = Correlator(CEASEFIRE, store.items())

    taken: dict[Key, AcceptedReport] = {}
    for report in order:  # what correlation took: a revision counts once it arrives after every lower one
        held = taken.get(report.identity)
        if held is None or (report.revision > held.revision and held.status != "retracted"):
            taken[report.identity] = report
    final = batch.current(list(taken.values()))
    last = newest(published)
    open_now = [r for r in last.values() if r.status not in GONE]
    assert {frozenset((x.source, x.report_id) for x in r.reports) for r in open_now} == components(final)
    by_key = {r.identity: r for r in final}
    for incident in open_now:
        check_link_tree(incident, by_key)
        assert {(x.source, x.report_id): x.revision for x in incident.reports} == {
            (x.source, x.report_id): by_key[(x.source, x.report_id)].revision for x in incident.reports
        }
    held = sorted(i.model_dump_json() for i in correlator.incidents())
    assert held == sorted(r.model_dump_json() for r in open_now)
    rebuilt = Correlator(CEASEFIRE, store.items())
    assert sorted(i.model_dump_json() for i in rebuilt.incidents()) == held

"""The latency benchmark times an alert from the report that caused it, never from an older one."""

from __future__ import annotations

import orjson

from bench.scenarios.latency import alert_delays


def alert(fingerprint: str, ts: float, incident_ids: list[str], status: str = "firing") -> tuple[None, bytes, float]:
    doc = {"fingerprint": fingerprint, "status": status, "annotations": {"incident_ids": incident_ids}}
    return None, orjson.dumps(doc), ts


SENT = {"r1": 10.0, "r2": 20.0, "r3": 30.0}
FIRST_SEEN = {"r1": 10.1, "r2": 20.1, "r3": 30.1}  # each report's first incident record
MEMBERS = {"inc-a": ["r1", "r2"], "inc-b": ["r3"]}


def test_a_firing_record_is_timed_from_the_newest_report_its_incident_gained() -> None:
    delays = alert_delays([alert("f", 20.2, ["inc-a"])], MEMBERS, FIRST_SEEN, SENT)
    assert [round(d, 3) for d in delays] == [0.2]  # from r2 (sent 20.0), not r1


def test_reports_published_after_the_alert_are_not_its_cause() -> None:
    delays = alert_delays([alert("f", 10.3, ["inc-a"])], MEMBERS, FIRST_SEEN, SENT)
    assert [round(d, 3) for d in delays] == [0.3]  # r2 joined later: r1 made it fire


def test_only_the_start_of_an_episode_is_timed() -> None:
    records = [
        alert("f", 10.2, ["inc-a"]),  # starts firing: r1 made it
        alert("f", 25.0, ["inc-a"]),  # moved (a hold ran out, a repeat): r2 joined before, not the cause
        alert("f", 50.0, ["inc-a"], status="resolved"),
        alert("g", 30.5, ["inc-b", "inc-a"]),  # another alert: its newest incident is inc-b
    ]
    delays = alert_delays(records, MEMBERS, FIRST_SEEN, SENT)
    assert sorted(round(d, 3) for d in delays) == [0.2, 0.5]


def test_an_episode_after_a_resolve_is_timed_from_what_its_incident_gained_since() -> None:
    records = [alert("f", 10.2, ["inc-a"]), alert("f", 15.0, ["inc-a"], status="resolved"), alert("f", 20.4, ["inc-a"])]
    delays = alert_delays(records, MEMBERS, FIRST_SEEN, SENT)
    assert [round(d, 3) for d in delays] == [0.2, 0.4]


def test_an_alert_naming_no_known_incident_is_skipped() -> None:
    assert alert_delays([alert("f", 5.0, []), alert("g", 5.0, ["elsewhere"])], MEMBERS, FIRST_SEEN, SENT) == []

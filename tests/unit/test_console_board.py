"""The live view: the alerts firing now (one row per fingerprint, most severe first, current values)
beside a short log of changes, and a status line in sight at any terminal size."""

from __future__ import annotations

import io
from collections import deque
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from rich.console import Console

from schemas.alert import Alert, Annotations, fingerprint
from services.alert.rules import AlertEngine
from services.console.board import Screen, change_text, firing_now, latest_changes, status_line
from services.console.live import OUTCOMES, render
from services.runtime.settings import Settings
from tests.support.ceasefires import three_parties

T0 = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
SNAPSHOT = AlertEngine(three_parties("abc")).fragility()


def alert(name: str, version: int, *, severity: str = "warning", minutes: int = 0, resolved: bool = False,
          summary: str = "", **labels: str) -> Alert:
    named = {"alertname": name, "ceasefire": "abc", "severity": severity, **labels}
    start = T0 + timedelta(minutes=minutes)
    updated = start + timedelta(minutes=10 * version)
    return Alert(
        fingerprint=fingerprint(named), labels=named, annotations=Annotations(summary=summary or name, description=""),
        status="resolved" if resolved else "firing", starts_at=start, ends_at=updated if resolved else None,
        updated_at=updated, version=version,
    )


def test_one_row_per_alert_firing_now_most_severe_then_longest_firing() -> None:
    poonch = [alert("CeasefireViolation", v, minutes=30, sector="Poonch") for v in (1, 2)]
    rajouri = alert("CeasefireViolation", 1, minutes=5, sector="Rajouri")
    critical = alert("Casualties", 1, severity="critical", minutes=60, incident="inc-1")
    gone = [alert("FragilityHigh", 1, severity="critical"), alert("FragilityHigh", 2, severity="critical", resolved=True)]
    shown = firing_now([poonch[1], critical, *gone, rajouri, poonch[0]])
    assert [(a.alertname, a.labels.get("sector"), a.version) for a in shown] == [
        ("Casualties", None, 1), ("CeasefireViolation", "Rajouri", 1), ("CeasefireViolation", "Poonch", 2),
    ]


def test_the_log_of_changes_is_each_record_once_newest_first_and_short() -> None:
    records = [alert("CeasefireViolation", v, sector="Poonch") for v in range(1, 10)]
    changes = latest_changes([*records, records[3]], shown=4)
    assert [a.version for a in changes] == [9, 8, 7, 6]


def test_a_resolution_says_how_long_it_fired_not_the_value_it_fired_with() -> None:
    resolved = alert("FragilityHigh", 3, severity="critical", resolved=True, summary="Ceasefire fragility 91.2/100")
    assert change_text(resolved) == "resolved after 30 min"


def live_ctx(firing: list[Alert], index: float) -> SimpleNamespace:
    stage = SimpleNamespace(
        engines={"abc": SimpleNamespace(firing=lambda: firing)},
        snapshots={"abc": SNAPSHOT.model_copy(update={"index": index})},
        recent=deque(firing[:3], maxlen=12),
    )
    settings = Settings(broker="kafka://127.0.0.1:19092", web_port=6071)
    return SimpleNamespace(settings=settings, stages={"alert": stage})


def draw(renderable: object, width: int, height: int) -> str:
    console = Console(file=io.StringIO(), width=width, height=height, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize(("width", "height"), [(200, 50), (120, 30), (80, 24), (60, 12), (40, 8)])
def test_the_status_line_is_in_sight_at_any_size(width: int, height: int) -> None:
    firing = [alert("CeasefireViolation", 1, minutes=i, sector=f"sector-{i}") for i in range(40)]
    firing.append(alert("FragilityHigh", 1, severity="critical", summary="Ceasefire fragility 80.0/100"))
    counts = dict.fromkeys(OUTCOMES, 3.0)
    shown = draw(render(live_ctx(firing, 62.5), counts, dict.fromkeys(OUTCOMES, 0.0), {"not_json": 1.0}), width, height)
    assert len(shown.splitlines()) <= height
    flat = shown.replace("\n", " ")
    assert "kafka://127.0.0.1:19092" in flat and "http://127.0.0.1:6071/metrics" in flat
    if height >= 30:
        assert "alerts firing now (41)" in shown
        assert "Ceasefire fragility 62.5/100 now" in shown  # the index as it is, not as it fired
        assert "80.0" not in shown


def test_the_status_line_keeps_each_part_whole_and_has_room_for_more() -> None:
    status = status_line([("broker", "kafka://h:1"), ("metrics", "http://h:2/metrics"), ("archive", "/var/lib/ceasefire")])
    shown = draw(Screen("body\n" * 100, status), 30, 10)
    for part in ("kafka://h:1", "http://h:2/metrics", "/var/lib/ceasefire"):
        assert part in shown

"""`ceasefire fragility` for a person: the series per ceasefire in event-time order, each point once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.fragility import FragilitySnapshot
from services.alert.rules import AlertEngine
from services.console.views import SPARK_WIDTH, fragility_lines, fragility_series, peaks, sparkline
from tests.support.ceasefires import three_parties

T0 = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
BASE = AlertEngine(three_parties("abc")).fragility()  # a valid snapshot to vary


def snap(ceasefire_id: str, hours: float, index: float) -> FragilitySnapshot:
    return BASE.model_copy(update={"ceasefire_id": ceasefire_id, "as_of": T0 + timedelta(hours=hours), "index": index})


def test_the_sparkline_spans_the_index_scale() -> None:
    assert sparkline([0, 50, 100]) == "▁▅█"
    assert sparkline([]) == ""
    assert sparkline([120, -5]) == "█▁"  # clamped, never an index error


def test_each_point_once_in_event_time_order_per_ceasefire() -> None:
    read = [snap("b", 2, 40), snap("a", 1, 10), snap("a", 0, 5), snap("a", 1, 10), snap("a", 1, 12)]
    assert fragility_series(read) == {
        "a": [(T0, 5), (T0 + timedelta(hours=1), 12)],  # a repeat counts once, the last read wins
        "b": [(T0 + timedelta(hours=2), 40)],
    }


def test_a_person_sees_a_sparkline_then_the_points() -> None:
    lines = fragility_lines("in-pk", [(T0, 5.0), (T0 + timedelta(hours=1), 95.0)])
    assert "▁█" in lines[0] and "2 points" in lines[0] and "now 95.0" in lines[0]
    assert lines[1].strip().startswith("2025-05-10T12:00Z") and lines[2].strip().startswith("2025-05-10T13:00Z")


def test_a_long_series_fits_a_line_and_keeps_its_peak() -> None:
    values = [10.0] * 500
    values[333] = 95.0
    squeezed = peaks(values)
    assert len(squeezed) == SPARK_WIDTH and max(squeezed) == 95.0
    assert peaks([1.0, 2.0]) == [1.0, 2.0]

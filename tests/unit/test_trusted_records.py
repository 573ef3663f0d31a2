"""Records built without validation (services/correlate/trusted.py) are the records validation builds."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from schemas.ceasefire import Ceasefire, Registry
from schemas.incident import CasualtyRange, Centre, Incident, ReportLink
from schemas.report import AcceptedReport
from services.correlate.state import Correlator
from services.correlate.trusted import compact, trusted
from services.runtime.codec import encode
from tests.support.reports import at, report


@pytest.fixture
def ceasefire(registry: Registry) -> Ceasefire:
    found = registry.get("in-pk-2025-05-10")
    assert found is not None
    return found


def accepted(report_id: str, minute: float, **overrides: Any) -> AcceptedReport:
    return AcceptedReport.model_validate({**report(report_id=report_id, observed_at=at(minute), **overrides),
                                          "ingested_at": at(minute + 1)})


def validated(record: BaseModel) -> BaseModel:
    """The same values through the model's validation, as the fold built records before."""
    return type(record)(**{name: getattr(record, name) for name in type(record).model_fields})


def same(record: BaseModel) -> None:
    again = validated(record)
    assert record == again
    assert encode(record) == encode(again)
    assert record.model_dump() == again.model_dump()
    assert record.model_dump_json(by_alias=True, exclude_none=True) == again.model_dump_json(
        by_alias=True, exclude_none=True
    )
    assert record.model_fields_set == again.model_fields_set
    assert list(record.__dict__) == list(again.__dict__)  # the order fields serialise in


def records_of(incident: Incident) -> list[BaseModel]:
    nested: list[BaseModel] = [incident, incident.casualties, *incident.reports]
    if incident.location is not None:
        nested.append(incident.location)
    return nested


def test_every_record_a_correlator_publishes_is_the_validated_record(ceasefire: Ceasefire) -> None:
    correlator = Correlator(ceasefire)
    stream = [
        accepted("a", 0),
        accepted("b", 5, source="pk.ispr", source_party="PK", accused_party="IN", casualties={"killed": 2}),
        accepted("c", 40, location={"sector": "Poonch"}, casualties=...),  # no coordinates, no figures
        accepted("d", 60, location={"sector": "Poonch"}, source="un.unmogip", source_party="NEUTRAL",
                 accused_party=...),
        accepted("e", 20, source="in.bsf", violation_type="drone"),  # bridges the two incidents
    ]
    kinds: set[type[BaseModel]] = set()
    for item in stream:
        for incident in correlator.add(item):
            for record in records_of(incident):
                same(record)
                kinds.add(type(record))
    assert kinds == {Incident, CasualtyRange, ReportLink, Centre}
    rebuilt = Correlator(ceasefire, correlator.take_changes().items())
    for incident in rebuilt.incidents():
        for record in records_of(incident):
            same(record)


def test_records_share_their_fields_set_but_a_copy_does_not() -> None:
    values = {"lat": 33.0, "lon": 74.0, "radius_km": 1.5}
    first, second = trusted(Centre, dict(values)), trusted(Centre, dict(values))
    assert first.model_fields_set is second.model_fields_set
    moved = first.model_copy(update={"lat": 34.0})
    assert moved.lat == 34.0 and first.lat == 33.0
    assert first.model_fields_set == {"lat", "lon", "radius_km"}
    with pytest.raises(Exception):  # noqa: B017 - frozen: pydantic's own error
        first.lat = 1.0  # type: ignore[misc]


def test_a_compact_record_equals_a_trusted_one() -> None:
    now = datetime.fromisoformat(at(0))
    values = {
        "source": "in.army", "report_id": "r-1", "source_party": "IN", "accused_party": None,
        "observed_at": now, "violation_type": "mortar",
        "sector": None, "lat": 33.0, "lon": 74.0, "precision_km": 1.0, "killed": None, "injured": 2,
        "ingested_at": now + timedelta(minutes=1),
        "linked_to": ("pk.ispr", "r-0"), "distance_km": 0.5, "gap_minutes": 3.0, "late": False,
    }
    validated_link = ReportLink(**values)
    built = compact(ReportLink, dict(validated_link.__dict__))
    assert built == validated_link and encode(built) == encode(validated_link)
    assert list(built.__dict__) == list(validated_link.__dict__)


def test_a_model_that_is_not_frozen_is_refused() -> None:
    class Loose(BaseModel):
        x: int

    with pytest.raises(TypeError):
        trusted(Loose, {"x": 1})

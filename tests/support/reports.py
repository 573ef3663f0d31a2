"""Valid reports to start from; tests override what they are about."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

CEASEFIRE = "in-pk-2025-05-10"
START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)

BASE: dict[str, Any] = {
    "report_id": "r-1",
    "source": "in.army",
    "source_party": "IN",
    "accused_party": "PK",
    "ceasefire_id": CEASEFIRE,
    "observed_at": "2025-05-10T17:40:00+05:30",
    "location": {"lat": 33.77, "lon": 74.09, "place": "Krishna Ghati", "precision_km": 2},
    "violation_type": "small_arms",
    "casualties": {"killed": 0, "injured": 1, "civilian": False},
    "description": "Unprovoked small-arms fire on forward posts.",
    "evidence": ["https://example.org/statement/1"],
}


def report(**overrides: Any) -> dict[str, Any]:
    """A valid report dict; `location__sector="Poonch"` style keys reach one level down."""
    doc = copy.deepcopy(BASE)
    for key, value in overrides.items():
        if "__" in key:
            outer, inner = key.split("__", 1)
            doc.setdefault(outer, {})
            if value is ...:
                doc[outer].pop(inner, None)
            else:
                doc[outer][inner] = value
        elif value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def at(minutes: float) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


def encode(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)

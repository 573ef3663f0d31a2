"""A small test ceasefire with three parties (so the parties clause can fail too) and overlapping sectors."""

from __future__ import annotations

from schemas.ceasefire import Ceasefire

NORTH = {"name": "North", "lat": 33.30, "lon": 74.10, "radius_km": 12}
SOUTH = {"name": "South", "lat": 33.10, "lon": 74.10, "radius_km": 15}
EAST = {"name": "East", "lat": 33.20, "lon": 74.30, "radius_km": 8}


def three_parties(ceasefire_id: str, east: bool = False) -> Ceasefire:
    """Parties A, B, C; sectors North and South (and East, overlapping both, if asked)."""
    return Ceasefire.model_validate(
        {
            "id": ceasefire_id,
            "name": "three parties",
            "effective_from": "2025-05-01T00:00:00Z",
            "parties": [{"code": c, "name": c} for c in ("A", "B", "C")],
            "sectors": [NORTH, SOUTH, EAST] if east else [NORTH, SOUTH],
        }
    )

"""The ceasefire registry (`deploy/ceasefires.yaml`): which ceasefires exist, their parties and sectors.

Validation checks reports against it; correlation reads its per-ceasefire link settings.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

NEUTRAL = "NEUTRAL"
EARTH_RADIUS_KM = 6371.0088


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a sphere of the IUGG mean Earth radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


class Party(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,15}$")
    name: str

    @field_validator("code")
    @classmethod
    def _not_neutral(cls, code: str) -> str:
        if code == NEUTRAL:
            raise ValueError(f"{NEUTRAL} is reserved for observers and cannot be a party")
        return code


class Sector(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=64)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_km: float = Field(gt=0, le=200)
    party: str | None = None  # which side of the line the sector lies on, if any

    def contains(self, lat: float, lon: float) -> bool:
        return great_circle_km(self.lat, self.lon, lat, lon) <= self.radius_km


class BoundingBox(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min_lat: float = Field(ge=-90, le=90)
    min_lon: float = Field(ge=-180, le=180)
    max_lat: float = Field(ge=-90, le=90)
    max_lon: float = Field(ge=-180, le=180)

    def contains(self, lat: float, lon: float) -> bool:
        return self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon


class LinkSettings(BaseModel):
    """Per-ceasefire overrides of the correlation link rule (see docs/link-rule.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    window_minutes: float = Field(default=30, gt=0)
    distance_km: float = Field(default=10, ge=0)
    allowed_lateness_hours: float = Field(default=6, ge=0)
    # How long correlation remembers an evicted report's identity, so a re-delivery changes nothing.
    remember_hours: float = Field(default=14 * 24, ge=0)


class Ceasefire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    name: str
    parties: tuple[Party, ...] = Field(min_length=2)
    effective_from: AwareDatetime
    effective_until: AwareDatetime | None = None
    bbox: BoundingBox | None = None
    sectors: tuple[Sector, ...] = ()
    link: LinkSettings = LinkSettings()
    _sectors_by_name: dict[str, Sector] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_names(self) -> Ceasefire:
        codes = [p.code for p in self.parties]
        if len(set(codes)) != len(codes):
            raise ValueError(f"ceasefire {self.id}: duplicate party codes {codes}")
        names = [s.name.casefold() for s in self.sectors]
        if len(set(names)) != len(names):
            raise ValueError(f"ceasefire {self.id}: duplicate sector names")
        return self

    @property
    def party_codes(self) -> frozenset[str]:
        return frozenset(p.code for p in self.parties)

    def sector(self, name: str) -> Sector | None:
        """Case-insensitive sector lookup."""
        return self._sector_index().get(name.casefold())

    def _sector_index(self) -> dict[str, Sector]:
        if self._sectors_by_name is None:
            self._sectors_by_name = {s.name.casefold(): s for s in self.sectors}
        return self._sectors_by_name

    def in_force(self, at: datetime) -> bool:
        return self.effective_from <= at and (self.effective_until is None or at < self.effective_until)


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ceasefires: tuple[Ceasefire, ...]

    @model_validator(mode="after")
    def _unique_ids(self) -> Registry:
        ids = [c.id for c in self.ceasefires]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate ceasefire ids: {ids}")
        return self

    _by_id: dict[str, Ceasefire] | None = PrivateAttr(default=None)

    def get(self, ceasefire_id: str) -> Ceasefire | None:
        if self._by_id is None:
            self._by_id = {c.id: c for c in self.ceasefires}
        return self._by_id.get(ceasefire_id)


def load_registry(path: Path) -> Registry:
    """Read and validate the registry YAML; a broken registry fails loudly at start-up."""
    with path.open(encoding="utf-8") as fh:
        return Registry.model_validate(yaml.safe_load(fh))

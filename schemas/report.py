"""Report schema v1: what a source files about one violation, and the accepted form ingest publishes.

Closed models: an unknown top-level field is an error; free-form additions go in `extensions`.
Numbers are strict (a JSON string "3" is not a casualty count) and `None` keeps its meaning:
`killed: 0` says "nobody was killed", an absent `killed` says "no figure given".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.ceasefire import NEUTRAL

SCHEMA_VERSION = 1


class ViolationType(StrEnum):
    SMALL_ARMS = "small_arms"
    SNIPER = "sniper"
    HEAVY_MACHINE_GUN = "heavy_machine_gun"
    MORTAR = "mortar"
    ARTILLERY = "artillery"
    ROCKET = "rocket"
    DRONE = "drone"
    MISSILE = "missile"
    AIR_STRIKE = "air_strike"
    GROUND_ASSAULT = "ground_assault"
    INFILTRATION = "infiltration"
    AIRSPACE_VIOLATION = "airspace_violation"
    OTHER = "other"


# RFC 3339 `date-time` (section 5.6): seconds required, an offset `Z` or `±hh:mm` required; `T` in
# either case, or a space (the RFC's own note allows it for readability).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
).fullmatch
_LEAP_SECOND = re.compile(r":60(?:\.[0-9]+)?")
MIN_PRECISION_KM = 0.01  # 10 m: finer than any field report; keeps link weights (1/p²) finite
MAX_PRECISION_KM = 25.0
MAX_CASUALTIES = 100_000  # per report and figure: far beyond any one violation, far below int64


def _rfc3339_text(value: Any) -> Any:
    """Only RFC 3339 text: pydantic alone would read a bare number as a Unix time, even inside a string
    ("1746881400"), and accept `+0530` offsets and times without seconds. A leap second (`:60`), which
    RFC 3339 allows and Python cannot hold, is read as the last microsecond before it (`:59.999999`),
    so it keeps its order among the reports around it."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _RFC3339(value) is None:
        raise ValueError("must be an RFC 3339 date-time with seconds and an offset, e.g. 2025-05-10T21:40:00+05:30")
    if value[17:19] == "60":
        value = value[:16] + _LEAP_SECOND.sub(":59.999999", value[16:], count=1)
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: a verdict, never an exception
        raise ValueError("date-time out of range once converted to UTC") from None


EventTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_to_utc)]

MAX_EXTENSIONS_DEPTH = 16


def _shallow(value: dict[str, Any]) -> dict[str, Any]:
    # orjson reads 1024 levels but pydantic-core's JSON parser stops near 200: a report accepted with
    # deeper extensions could not be read back downstream and would wedge the stage that decodes it.
    deepest, stack = 1, [(node, 2) for node in value.values()]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_EXTENSIONS_DEPTH:
                raise ValueError(f"extensions nest more than {MAX_EXTENSIONS_DEPTH} levels deep")
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return value


Extensions = Annotated[dict[str, Any], AfterValidator(_shallow)]
Degrees = StrictFloat  # strict: a JSON integer is fine, a string or a boolean is not
PartyCode = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,15}$")]


class Location(BaseModel):
    """Where: coordinates (WGS84) and/or a registry sector. At least one of the two."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)  # as Report: " Poonch"
    lat: Degrees | None = Field(default=None, ge=-90, le=90)
    lon: Degrees | None = Field(default=None, ge=-180, le=180)
    sector: str | None = Field(default=None, min_length=1, max_length=64)
    place: str | None = Field(default=None, max_length=200)
    precision_km: Degrees = Field(default=1, ge=MIN_PRECISION_KM, le=MAX_PRECISION_KM)

    @model_validator(mode="after")
    def _where(self) -> Location:
        if (self.lat is None) != (self.lon is None):
            raise PydanticCustomError("half_coordinates", "lat and lon must be given together")
        if self.lat is None and self.sector is None:
            raise PydanticCustomError("no_location", "coordinates (lat, lon) or a sector are required")
        return self

    @property
    def has_coordinates(self) -> bool:
        return self.lat is not None


class Casualties(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    killed: StrictInt | None = Field(default=None, ge=0, le=MAX_CASUALTIES)
    injured: StrictInt | None = Field(default=None, ge=0, le=MAX_CASUALTIES)
    civilian: StrictBool | None = None


MAX_REVISION = 1_000_000
SOURCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"  # ASCII only: no look-alike letters
REPORT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
is_source_id = re.compile(SOURCE_ID_PATTERN).fullmatch  # fullmatch: `$` alone would let a trailing newline by
is_report_id = re.compile(REPORT_ID_PATTERN).fullmatch
ReportStatus = Literal["filed", "retracted"]


class Report(BaseModel):
    """A report of one ceasefire violation, as a source files it (topic `ceasefire.reports.v1`).

    A source corrects a report by sending it again under the same `report_id` with a higher `revision`
    (the whole report, as it now stands), and withdraws it with `status: "retracted"` (docs/reports.md,
    "Revisions and retractions").
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    report_id: str = Field(pattern=REPORT_ID_PATTERN)
    source: str = Field(pattern=SOURCE_ID_PATTERN)
    source_party: PartyCode
    accused_party: PartyCode | None = None
    ceasefire_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    observed_at: EventTime
    reported_at: EventTime | None = None
    location: Location
    violation_type: ViolationType
    casualties: Casualties | None = None
    description: str | None = Field(default=None, max_length=4000)
    evidence: list[HttpUrl] = Field(default_factory=list, max_length=20)
    extensions: Extensions = Field(default_factory=dict)
    revision: StrictInt = Field(default=1, ge=1, le=MAX_REVISION)
    status: ReportStatus = "filed"
    retraction_reason: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _consistent(self) -> Report:
        if self.retraction_reason is not None and self.status != "retracted":
            raise PydanticCustomError("reason_without_retraction", "retraction_reason needs status retracted")
        if self.accused_party is not None and self.accused_party == self.source_party:
            raise PydanticCustomError(
                "self_accusation", "accused_party {party} is the source's own party", {"party": self.accused_party}
            )
        if self.accused_party == NEUTRAL:
            raise PydanticCustomError("neutral_accused", "NEUTRAL cannot be accused")
        return self

    @property
    def retracted(self) -> bool:
        return self.status == "retracted"

    @property
    def identity(self) -> tuple[str, str]:
        """`(source, report_id)` identifies a report (the CloudEvents source+id rule)."""
        return (self.source, self.report_id)


class AcceptedReport(Report):
    """A validated, normalised report (topic `ceasefire.reports.accepted.v1`, key `ceasefire_id`).

    `location.sector` carries the registry's spelling. `ingested_at` is when ingest validated it
    (processing time: used only for latency, never for windows). `ordered_at` is the event time at
    which the report enters the ordered stream: its `observed_at`, or the newest `observed_at` before it
    on its ingest partition when it came after newer ones (docs/event-time.md); set by ingest.
    """

    ingested_at: AwareDatetime
    ordered_at: AwareDatetime | None = None

    @property
    def ordered(self) -> datetime:
        """`ordered_at`, or `observed_at` for a report accepted before ordering was added."""
        return self.ordered_at or self.observed_at

"""The bundled demo scenario (`deploy/demo/scenario.jsonl`): a seeded generator of JSON Lines reports.

SYNTHETIC. The ceasefire and the place names are real; every report, time, weapon and casualty figure in the
output is invented to exercise the pipeline, and none of it describes what happened on the ground.

The story, in event time after the ceasefire took effect (`in-pk-2025-05-10`, 2025-05-10T11:30Z):
1. calm: a few small-arms exchanges around Poonch on the evening of 10 May, then a light incident every few
   hours;
2. a tense night (11 May 15:00-23:00Z, at most four incidents in any hour): many sectors, mortars, mutual
   accusations, UNMOGIP corroboration;
3. a quiet day, then a flare-up (12 May 22:00Z - 13 May 10:00Z): artillery, then drones and missiles, deaths,
   and a surge of incidents in the hour from `SURGE_START` after a quiet 24 hours;
4. de-escalation: light incidents more than six hours apart, so open alerts resolve.
Replayed through the project's correlator and alert engine (tests/unit/test_scenario.py), every alert rule
fires; Escalation, Casualties, ViolationSurge and a critical FragilityHigh (index >= 75) first fire in the
flare-up.

Each incident is 1-4 reports by different sources that the link rule joins (close in time, and in place or
sector), and no two incidents come near each other (with a margin), so correlation rebuilds exactly the
planned incidents. On top: exact duplicates (~10 %), resubmissions (~3 %), garbage of many dead-letter kinds
(~3 %), one report ~3 h late and one that bridges two incidents. `EXPECTED` says what ingest makes of it.

Pure and deterministic: no wall clock, one `random.Random(seed)`; the same seed gives the same bytes.
`python -m services.runtime.scenario [--out PATH] [--check]` writes the file, or checks that it is fresh.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from schemas.ceasefire import Ceasefire, Sector, great_circle_km, load_registry
from services.ingest.validate import Reason
from services.runtime.settings import PROJECT_ROOT

CEASEFIRE_ID = "in-pk-2025-05-10"
SEED = 20250510
SCENARIO_PATH = PROJECT_ROOT / "deploy" / "demo" / "scenario.jsonl"
REGISTRY_PATH = PROJECT_ROOT / "deploy" / "ceasefires.yaml"
SURGE_START = datetime(2025, 5, 13, 0, 0, tzinfo=UTC)
REPLAY_NOW = datetime(2025, 5, 16, 12, 0, tzinfo=UTC)  # a processing time after the last report, for tests
IST, PKT = timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=5))


@dataclass(frozen=True, slots=True)
class Expected:
    """What ingest makes of the file: every line is exactly one of these."""

    lines: int
    accepted: int
    exact_duplicates: int
    resubmissions: int
    dead_letters: dict[Reason, int]  # by primary reason
    incidents: int  # what correlation should rebuild from the accepted reports


EXPECTED = Expected(
    lines=427,
    accepted=356,
    exact_duplicates=43,
    resubmissions=13,
    # not JSON: prose, truncated JSON, base64; not UTF-8: a gzip header; schema: a count as text,
    # a naive time, a Unix time; then one for each registry and time rule
    dead_letters={
        Reason.NOT_JSON: 3, Reason.NOT_UTF8: 1, Reason.SCHEMA: 3, Reason.UNKNOWN_CEASEFIRE: 1,
        Reason.UNKNOWN_SECTOR: 1, Reason.SELF_ACCUSATION: 1, Reason.FUTURE_OBSERVED_AT: 1,
        Reason.REPORTED_BEFORE_OBSERVED: 1, Reason.COORDINATES_OUT_OF_RANGE: 1,
        Reason.OUTSIDE_CEASEFIRE_AREA: 1, Reason.PARTY_NOT_IN_CEASEFIRE: 1,
    },
    incidents=116,
)


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    party: str
    prefix: str  # of its report ids: IA-2025-05-10-0001
    tz: timezone  # reporters write local time; validation normalises it to UTC


SOURCES = {s.name: s for s in (
    Source("in.army", "IN", "IA", IST), Source("in.bsf", "IN", "BSF", IST),
    Source("pk.ispr", "PK", "ISPR", PKT), Source("pk.rangers", "PK", "PR", PKT),
    Source("un.unmogip", "NEUTRAL", "UNMOGIP", UTC), Source("media.reuters", "NEUTRAL", "RTR", UTC),
    Source("media.dawn", "PK", "DAWN", PKT), Source("media.thehindu", "IN", "TH", IST),
)}
PLACES = {
    "Kupwara": ("Keran", "Tangdhar", "Machil", "Nowgam"), "Baramulla/Uri": ("Uri", "Kamalkote", "Boniyar"),
    "Poonch": ("Krishna Ghati", "Mendhar", "Balakote", "Shahpur"),
    "Rajouri": ("Nowshera", "Sunderbani", "Lam"),
    "Akhnoor": ("Pallanwala", "Khour", "Chhamb"), "Jammu/R.S. Pura": ("Arnia", "Suchetgarh", "Abdullian"),
    "Samba": ("Ramgarh", "Chak Faqira", "Regal"), "Kathua": ("Hiranagar", "Bobiya", "Pansar"),
    "Neelum": ("Athmuqam", "Kel", "Shardi", "Dudhnial"), "Leepa": ("Leepa", "Reshian"),
    "Chakothi": ("Chakothi", "Hattian Bala", "Chinari"), "Rawalakot": ("Hajira", "Abbaspur", "Tatta Pani"),
    "Kotli": ("Nakyal", "Khuiratta", "Sehnsa"), "Bhimber": ("Samahni", "Barnala"),
    "Sialkot": ("Charwah", "Bajwat", "Harpal"), "Shakargarh": ("Zafarwal", "Dhamthal"),
}
# On the international border and the working boundary, BSF and Rangers report, not the armies.
BORDER = frozenset({"Jammu/R.S. Pura", "Samba", "Kathua", "Sialkot", "Shakargarh"})
FRONTS = (  # (IN sector, PK sector) close enough for a mutual accusation 2-7 km apart, each in its own sector
    ("Kupwara", "Neelum"), ("Kupwara", "Leepa"), ("Baramulla/Uri", "Chakothi"), ("Poonch", "Rawalakot"),
    ("Rajouri", "Kotli"), ("Jammu/R.S. Pura", "Sialkot"), ("Samba", "Shakargarh"), ("Kathua", "Shakargarh"),
)
WEAPON = {
    "small_arms": "small-arms fire", "sniper": "sniper fire", "heavy_machine_gun": "heavy machine-gun fire",
    "mortar": "mortar shelling", "artillery": "artillery shelling", "rocket": "rocket fire",
    "drone": "armed drone attacks", "missile": "missile strikes",
}
TEMPLATES = {
    "in.army": ("Unprovoked {w} on forward posts in {p} sub-sector; troops responded proportionately.",
                "Pakistan Army resorted to {w} along the LoC in {p}."),
    "in.bsf": ("Unprovoked {w} from across the international border at {p}; BSF responded.",),
    "pk.ispr": ("Indian troops resorted to unprovoked {w} in {p} sector; Pakistani troops responded.",
                "{W} by the Indian Army along the LoC near {p}; an effective response was given."),
    "pk.rangers": ("Unprovoked {w} by BSF along the Working Boundary near {p}.",),
    "un.unmogip": ("Military observers recorded {w} across the line near {p}.",),
    "media.reuters": ("Officials and residents reported {w} near {p}.",),
    "media.dawn": ("Residents of {p} reported {w} from across the line.",),
    "media.thehindu": ("Officials said {w} hit areas near {p}.",),
}


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    times: tuple[datetime, ...]  # when each incident starts
    weapons: tuple[str, ...]  # violation types, drawn uniformly
    mutual: float  # chance that an incident is a mutual accusation across a front
    witness: float  # chance of each further report (UNMOGIP, own-side media, Reuters)
    deadly: float  # chance that an incident kills someone
    sectors: frozenset[str] = frozenset()  # where incidents may happen; empty: anywhere
    cap: int = 0  # most incidents in any hour (by last report); 0: no limit


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 5, day, hour, minute, tzinfo=UTC)


def _evenly(start: datetime, end: datetime, count: int) -> tuple[datetime, ...]:
    minutes = (end - start).total_seconds() / 60
    return tuple(start + timedelta(minutes=round(minutes * i / count)) for i in range(count))


LIGHT = ("small_arms", "small_arms", "sniper")
PHASES = (
    Phase("calm", (_at(10, 14, 40), _at(10, 15, 50), _at(10, 17, 5)), LIGHT, 0.3, 0.4, 0,
          frozenset({"Poonch", "Rawalakot"})),  # the first evening: a few exchanges in one place
    Phase("calm", (_at(10, 21, 10), _at(11, 0, 40), _at(11, 4, 25), _at(11, 8, 10), _at(11, 11, 50)),
          LIGHT, 0.2, 0.4, 0),
    # Three incidents an hour: the surge rule (five an hour and more) should first fire in the flare-up.
    Phase("tense night", _evenly(_at(11, 15), _at(11, 23), 24),
          ("small_arms", "heavy_machine_gun", "mortar", "mortar"), 0.6, 0.8, 0, cap=4),
    Phase("lull", (_at(12, 1, 30), _at(12, 6), _at(12, 10, 40), _at(12, 15, 10), _at(12, 19, 45)),
          LIGHT, 0.2, 0.3, 0),
    Phase("flare-up", _evenly(_at(12, 22), _at(12, 23, 50), 6), ("mortar", "artillery", "artillery"),
          0.8, 0.5, 0, cap=4),
    Phase("flare-up", _evenly(SURGE_START, SURGE_START + timedelta(minutes=58), 12),
          ("artillery", "artillery", "mortar", "rocket"), 0.5, 0.6, 0.2),
    Phase("flare-up", _evenly(_at(13, 1, 5), _at(13, 5), 28),
          ("drone", "drone", "missile", "artillery", "rocket"),
          0.6, 0.7, 0.4),
    Phase("flare-up", _evenly(_at(13, 5, 10), _at(13, 10), 24),
          ("artillery", "mortar", "mortar", "small_arms"),
          0.5, 0.6, 0.1),
    Phase("de-escalation", (_at(13, 12, 0), _at(13, 15, 15), _at(13, 21, 50), _at(14, 3, 10), _at(14, 12, 30),
                            _at(14, 22, 40), _at(15, 9, 15), _at(15, 21, 50)),
          ("small_arms", "sniper", "heavy_machine_gun"), 0.3, 0.3, 0),
)
LATE_AT = (2, 12)  # (phase, incident) whose UNMOGIP account arrives ~3 h after the reports around it
BRIDGE_AT = _at(11, 19, 5)  # Akhnoor and Jammu incidents 20 min and ~17 km apart, joined by a later report


@dataclass(slots=True)
class Draft:
    """One report before it has an id: what it says, and when it reaches the ingest topic."""

    source: Source
    at: datetime
    sector: str | None
    point: tuple[float, float] | None
    place: str
    precision: float
    weapon: str
    casualties: dict[str, Any] | None
    description: str
    arrival: datetime
    stamped: bool = True  # carries reported_at (= arrival)
    report_id: str = ""
    resubmission: bool = False

    @property
    def accused(self) -> str | None:
        return {"IN": "PK", "PK": "IN"}.get(self.source.party)


@dataclass(frozen=True, slots=True)
class PlannedIncident:
    """An incident as planned: correlation should rebuild exactly these reports as one incident."""

    phase: str
    reports: tuple[tuple[str, str], ...]  # (source, report_id)
    late: tuple[str, str] | None = None  # the report that arrives ~3 h after its neighbours
    bridge: tuple[str, str] | None = None  # the later report that joins two otherwise separate incidents


@dataclass(frozen=True, slots=True)
class Scenario:
    lines: tuple[bytes, ...]
    incidents: tuple[PlannedIncident, ...]
    tally: Expected  # counted while building; must equal EXPECTED

    def render(self) -> bytes:
        return b"".join(line + b"\n" for line in self.lines)


def _offset(lat: float, lon: float, north_km: float, east_km: float) -> tuple[float, float]:
    return lat + north_km / 110.574, lon + east_km / (111.320 * math.cos(math.radians(lat)))


def _toward(a: Sector, b: Sector, km: float) -> tuple[float, float]:
    f = km / great_circle_km(a.lat, a.lon, b.lat, b.lon)
    return a.lat + f * (b.lat - a.lat), a.lon + f * (b.lon - a.lon)


def _close(a: Draft, b: Draft, minutes: float, km: float, sectors: dict[str, Sector]) -> bool:
    """The link rule with a margin: within `minutes`, and near by distance (`km` + both precisions), by sector
    name, or by one report lying in (or within 1 km of) the other's sector. Parties are ignored: stricter."""
    if abs(a.at - b.at) > timedelta(minutes=minutes):
        return False
    if a.sector and b.sector and a.sector.casefold() == b.sector.casefold():
        return True
    if a.point is not None and b.point is not None:
        return great_circle_km(*a.point, *b.point) <= km + a.precision + b.precision
    for named, located in ((a, b), (b, a)):
        sector = sectors.get(named.sector.casefold()) if named.sector else None
        if sector and located.point:
            return great_circle_km(sector.lat, sector.lon, *located.point) <= sector.radius_km + 1
    return False


def _official(sector: Sector) -> str:
    if sector.party == "IN":
        return "in.bsf" if sector.name in BORDER else "in.army"
    return "pk.rangers" if sector.name in BORDER else "pk.ispr"


class Planner:
    """Draws incidents phase by phase, each clear of every other by more than the link rule's reach."""

    def __init__(self, rng: random.Random, ceasefire: Ceasefire) -> None:
        self.rng, self.ceasefire = rng, ceasefire
        self.window, self.km = ceasefire.link.window_minutes, ceasefire.link.distance_km
        self.incidents: list[tuple[str, list[Draft]]] = []
        self.late: dict[int, Draft] = {}
        self.bridge: dict[int, Draft] = {}
        self.spans: list[tuple[datetime, datetime]] = []  # (first, last report) of each incident or its part
        self.sectors = {s.name.casefold(): s for s in ceasefire.sectors}

    def sector(self, name: str) -> Sector:
        found = self.ceasefire.sector(name)
        assert found is not None, f"sector {name!r} is not in the registry"
        return found

    def draft(self, source: str, at: datetime, where: Sector | None, point: tuple[float, float] | None,
              weapon: str, deadly: int, place: str | None = None) -> Draft:
        rng, src = self.rng, SOURCES[source]
        place = place or rng.choice(PLACES[where.name if where else "Akhnoor"])
        w = WEAPON[weapon]
        text = rng.choice(TEMPLATES[source]).format(w=w, W=w[0].upper() + w[1:], p=place)
        sector = where.name if where else None
        if sector and source.startswith("media.") and rng.random() < 0.1:
            sector = sector.upper()  # validation normalises a sector's spelling
        neutral = src.party == "NEUTRAL"
        return Draft(
            source=src, at=at, sector=sector,
            point=(round(point[0], 4), round(point[1], 4)) if point else None,
            place=place, precision=(3.0 if neutral else float(rng.randint(1, 2))) if point else 5.0,
            weapon=weapon,
            casualties=None if source == "un.unmogip" else self.casualties(deadly),
            description=text + (" Casualties reported." if deadly else ""),
            arrival=at + timedelta(minutes=rng.randint(10, 35) if neutral else rng.randint(5, 20)),
            stamped=rng.random() < 0.85,
        )

    def casualties(self, deadly: int) -> dict[str, Any] | None:
        """Invented figures; sources of one incident disagree a little, as they do."""
        rng = self.rng
        if deadly:
            killed = max(1, deadly + rng.choice((-1, 0, 0, 1)))
            injured = rng.randint(killed, 3 * killed + 2)
            return {"killed": killed, "injured": injured, "civilian": rng.random() < 0.5}
        return {"killed": 0, "injured": rng.randint(0, 1)} if rng.random() < 0.15 else None

    def witnesses(self, t0: datetime, phase: Phase, weapon: str, deadly: int, near: tuple[float, float],
                  sector: Sector | None, sides: dict[str, Sector], cap: int) -> list[Draft]:
        """UNMOGIP near `near`, own-side media and Reuters naming a sector: at most `cap` of them."""
        rng, found = self.rng, []
        if rng.random() < phase.witness:
            point = _offset(*near, rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8))
            at = t0 + timedelta(minutes=rng.randint(3, 24))
            found.append(self.draft("un.unmogip", at, sector, point, weapon, 0,
                                    rng.choice(PLACES[(sector or sides["IN"]).name])))
        for party, media in (("IN", "media.thehindu"), ("PK", "media.dawn")):
            if party in sides and rng.random() < phase.witness:
                found.append(self.draft(media, t0 + timedelta(minutes=rng.randint(3, 24)), sides[party], None,
                                        weapon, deadly))
        if rng.random() < phase.witness / 2:
            found.append(self.draft("media.reuters", t0 + timedelta(minutes=rng.randint(3, 24)),
                                    rng.choice(list(sides.values())), None, weapon, deadly))
        rng.shuffle(found)
        return found[:cap]

    def mutual(
        self, front: tuple[str, str], t0: datetime, phase: Phase, weapon: str, deadly: int
    ) -> list[Draft]:
        """An IN and a PK report accusing each other, 5-15 min and 2-7 km apart, each in its own sector."""
        rng = self.rng
        a, b = self.sector(front[0]), self.sector(front[1])
        span = great_circle_km(a.lat, a.lon, b.lat, b.lon)
        reach_a, reach_b = 0.85 * a.radius_km, 0.85 * b.radius_km
        gap = rng.uniform(max(2.0, span - reach_a - reach_b), 7.0)
        d_in = rng.uniform(max(0.0, span - gap - reach_b), min(reach_a, span - gap))
        p_in, p_pk = _toward(a, b, d_in), _toward(a, b, d_in + gap)
        lag = timedelta(minutes=rng.randint(5, 15))
        t_in, t_pk = (t0, t0 + lag) if rng.random() < 0.5 else (t0 + lag, t0)
        reports = [self.draft(_official(a), t_in, a, p_in, weapon, deadly),
                   self.draft(_official(b), t_pk, b, p_pk, weapon, deadly)]
        middle = ((p_in[0] + p_pk[0]) / 2, (p_in[1] + p_pk[1]) / 2)
        witnesses = self.witnesses(t0, phase, weapon, deadly, middle, None, {"IN": a, "PK": b}, 2)
        return self.after(reports, witnesses)

    def claim(self, name: str, t0: datetime, phase: Phase, weapon: str, deadly: int) -> list[Draft]:
        """One side's claim in one of its own sectors, with whoever else saw it."""
        rng, s = self.rng, self.sector(name)
        reach, angle = 0.45 * s.radius_km * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        point = _offset(s.lat, s.lon, reach * math.cos(angle), reach * math.sin(angle))
        first = self.draft(_official(s), t0, s, point, weapon, deadly)
        return self.after([first], self.witnesses(t0, phase, weapon, deadly, point, s, {str(s.party): s}, 3))

    def after(self, officials: list[Draft], witnesses: list[Draft]) -> list[Draft]:
        """Witnesses reach the topic after the officials they link to: an incident never splits on the way."""
        hub = max(r.arrival for r in officials)
        for w in witnesses:
            w.arrival = max(w.arrival, hub + timedelta(minutes=self.rng.randint(1, 8)))
        return officials + witnesses

    def place(self, t0: datetime, phase: Phase) -> list[Draft]:
        """The first location, from t0 on, where a new incident is clear of all others (35 min, 11 km)."""
        rng = self.rng
        weapon = rng.choice(phase.weapons)
        deadly = rng.randint(1, 4) if rng.random() < phase.deadly else 0
        kinds = ("mutual", "claim") if rng.random() < phase.mutual else ("claim", "mutual")
        for shift in range(0, 120, 7):
            start = t0 + timedelta(minutes=shift)
            near = [r for _, rs in self.incidents for r in rs if abs(r.at - start) < timedelta(minutes=75)]
            soon = (start - timedelta(minutes=35), start + timedelta(minutes=60))  # sectors named then: taken
            busy = {r.sector.casefold() for r in near if r.sector and soon[0] <= r.at <= soon[1]}
            for kind in kinds:
                wheres: list[Any] = list(FRONTS) if kind == "mutual" else [(name,) for name in sorted(PLACES)]
                wheres = [w for w in wheres if (not phase.sectors or phase.sectors.issuperset(w))
                          and not busy.intersection(n.casefold() for n in w)]
                rng.shuffle(wheres)
                for where in wheres:
                    build = self.mutual if kind == "mutual" else self.claim
                    reports = build(where if kind == "mutual" else where[0], start, phase, weapon, deadly)
                    margin = (self.window + 5, self.km + 1, self.sectors)
                    clear = not any(_close(new, old, *margin) for new in reports for old in near)
                    if clear and self.room(reports, phase.cap):
                        return reports
        raise RuntimeError(f"no room for an incident near {t0.isoformat()}")

    def room(self, reports: list[Draft], cap: int) -> bool:
        """Would every hour-long window still meet at most `cap` incidents? An incident spans its first to its
        last report: while its reports arrive, the alert stage places it anywhere in that span."""
        if not cap:
            return True
        hour, new = timedelta(hours=1), (min(r.at for r in reports), max(r.at for r in reports))
        spans = [*self.spans, new]
        ends = {t for span in spans for t in span if new[0] <= t < new[1] + hour}
        return all(sum(1 for a, b in spans if x - hour < b and a <= x) <= cap for x in ends)

    def plan(self) -> None:
        self.plan_bridge()
        for p, phase in enumerate(PHASES):
            for i, t0 in enumerate(phase.times):
                reports = self.place(t0, phase)
                if (p, i) == LATE_AT:  # one report per source, four at most
                    reports = [r for r in reports if r.source.name != "un.unmogip"][:3]
                    reports.append(self.late_report(reports))
                self.incidents.append((phase.name, reports))
                self.spans.append((min(r.at for r in reports), max(r.at for r in reports)))

    def plan_bridge(self) -> None:
        """Akhnoor (in.army) and Jammu/R.S. Pura (in.bsf), 20 min and ~17 km apart; UNMOGIP joins them."""
        akhnoor, jammu = self.sector("Akhnoor"), self.sector("Jammu/R.S. Pura")
        a = self.draft("in.army", BRIDGE_AT, akhnoor, _toward(akhnoor, jammu, 6.0), "mortar", 0, "Pallanwala")
        b = self.draft("in.bsf", BRIDGE_AT + timedelta(minutes=20), jammu, _toward(jammu, akhnoor, 6.0),
                       "mortar", 0, "Abdullian")
        half = great_circle_km(akhnoor.lat, akhnoor.lon, jammu.lat, jammu.lon) / 2
        joiner = self.draft("un.unmogip", BRIDGE_AT + timedelta(minutes=10), None,
                            _toward(akhnoor, jammu, half), "mortar", 0, "Khour")
        joiner.arrival, joiner.stamped = joiner.at + timedelta(minutes=75), True
        a.precision = b.precision = joiner.precision = 1.0
        self.bridge[len(self.incidents)] = joiner
        self.incidents.append((PHASES[2].name, [a, b, joiner]))
        # Two incidents until the joiner arrives; as it merges them the alert stage may see all three at once.
        self.spans += [(a.at, a.at), (b.at, b.at), (a.at, b.at)]

    def late_report(self, reports: list[Draft]) -> Draft:
        """UNMOGIP's account of this incident, filed ~3 h after the event (a delayed patrol report)."""
        first = next(r for r in reports if r.point is not None)
        late = self.draft("un.unmogip", first.at + timedelta(minutes=8), self.sector(first.sector or ""),
                          first.point, first.weapon, 0)
        late.arrival, late.stamped, late.precision = late.at + timedelta(hours=3, minutes=5), True, 1.0
        self.late[len(self.incidents)] = late
        return late


def _stamp(at: datetime, tz: timezone) -> str:
    return at.astimezone(tz).isoformat().replace("+00:00", "Z")


def _document(d: Draft) -> dict[str, Any]:
    """The report as its source files it; a resubmission restates the same content a little differently."""
    tz = UTC if d.resubmission else d.source.tz  # the same instant, written in UTC
    doc: dict[str, Any] = {"report_id": d.report_id, "source": d.source.name, "source_party": d.source.party}
    if d.accused:
        doc["accused_party"] = d.accused
    doc |= {"ceasefire_id": CEASEFIRE_ID, "observed_at": _stamp(d.at, tz)}
    if d.stamped:
        doc["reported_at"] = _stamp(d.arrival, tz)
    location: dict[str, Any] = {"lat": d.point[0], "lon": d.point[1]} if d.point else {}
    if d.sector:
        location["sector"] = d.sector
    location |= {"place": d.place, "precision_km": d.precision}
    doc |= {"location": location, "violation_type": d.weapon}
    if d.casualties is not None:
        doc["casualties"] = d.casualties
    doc["description"] = d.description.replace(" ", "  ", 1) if d.resubmission else d.description
    if d.resubmission:
        doc["evidence"] = [f"https://example.org/{d.source.name}/{d.report_id}"]
    return doc


def _encode(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def _assign_ids(drafts: list[Draft]) -> None:
    """Ids count per source and local day, in the order the reports were filed."""
    counters: Counter[tuple[str, str]] = Counter()
    for d in sorted(drafts, key=lambda d: (d.arrival, d.at, d.source.name)):
        day = d.at.astimezone(d.source.tz).date().isoformat()
        counters[(d.source.prefix, day)] += 1
        d.report_id = f"{d.source.prefix}-{day}-{counters[(d.source.prefix, day)]:04d}"


def _garbage(rng: random.Random, sample: list[dict[str, Any]]) -> list[tuple[Reason, bytes]]:
    """One line for each way a record goes wrong, made from reports of the scenario under ids of their own."""
    docs = [json.loads(_encode(d)) for d in rng.sample(sample, 12)]
    for n, doc in enumerate(docs, 1):
        doc["report_id"] = f"{doc['report_id'][:-4]}9{n:03d}"
    cut = _encode(docs[1])
    return [
        (Reason.NOT_JSON, b"Heavy firing reported in Uri sector since 2100 hrs, details to follow"),
        (Reason.NOT_JSON, cut[: len(cut) * 3 // 5]),
        (Reason.NOT_JSON, base64.b64encode(_encode(docs[2]))[:120]),
        (Reason.NOT_UTF8, bytes.fromhex("1f8b0808d2f1a76702ffab56ca4c51b252323430d051a8e5")),
        (Reason.SCHEMA, _encode(docs[0] | {"casualties": {"killed": "3", "injured": 2}})),
        (Reason.SCHEMA, _encode(docs[3] | {"observed_at": docs[3]["observed_at"][:19]})),
        (Reason.SCHEMA, _encode(docs[4] | {"observed_at": 1747000000})),
        (Reason.REPORTED_BEFORE_OBSERVED, _encode(docs[5] | {"reported_at": "2025-05-09T08:00:00Z"})),
        (Reason.UNKNOWN_CEASEFIRE, _encode(docs[6] | {"ceasefire_id": "in-pk-2021-02-25"})),
        (Reason.UNKNOWN_SECTOR, _encode(docs[7] | {"location": {"sector": "Krishna Ghati"}})),  # a sub-sector
        (Reason.SELF_ACCUSATION, _encode(docs[8] | {"source": "pk.ispr", "source_party": "PK",
                                                    "accused_party": "PK"})),
        (Reason.FUTURE_OBSERVED_AT, _encode(docs[9] | {"observed_at": "2099-05-12T22:40:00+05:30"})),
        (Reason.COORDINATES_OUT_OF_RANGE, _encode(docs[10] | {"location": {"lat": 334.53, "lon": 74.25}})),
        (Reason.OUTSIDE_CEASEFIRE_AREA, _encode(docs[11] | {"location": {"lat": 33.12, "lon": 35.14}})),
        (Reason.PARTY_NOT_IN_CEASEFIRE, _encode(docs[0] | {"accused_party": "AF"})),
    ]


def build(seed: int = SEED, registry_path: Path = REGISTRY_PATH) -> Scenario:
    """Plan the incidents, file their reports, then add resubmissions, duplicates and garbage."""
    rng = random.Random(seed)
    ceasefire = load_registry(registry_path).get(CEASEFIRE_ID)
    assert ceasefire is not None
    planner = Planner(rng, ceasefire)
    planner.plan()
    drafts = [d for _, reports in planner.incidents for d in reports]
    special = {id(d) for d in (*planner.late.values(), *planner.bridge.values())}
    ordinary = [d for d in drafts if id(d) not in special]
    resubmitted = []
    for d in rng.sample(ordinary, round(len(drafts) * 0.036)):
        later = d.arrival + timedelta(minutes=rng.randint(30, 150))
        resubmitted.append(replace(d, resubmission=True, stamped=True, arrival=later))
    _assign_ids(drafts + resubmitted)
    filed = [(d.arrival, n, _encode(_document(d))) for n, d in enumerate(drafts + resubmitted)]
    originals = [f for f, d in zip(filed, drafts, strict=False) if id(d) not in special]
    for n, (arrival, _, line) in enumerate(rng.sample(originals, round(len(drafts) * 0.12))):
        filed.append((arrival + timedelta(minutes=rng.randint(1, 90)), 100_000 + n, line))  # re-sent as is
    garbage = _garbage(rng, [_document(d) for d in ordinary])
    first, last = min(f[0] for f in filed), max(f[0] for f in filed)
    filed += [(first + (last - first) * rng.random(), -1 - n, line) for n, (_, line) in enumerate(garbage)]
    lines = tuple(line for _, _, line in sorted(filed))
    un = SOURCES["un.unmogip"].name
    incidents = tuple(
        PlannedIncident(
            phase, tuple((d.source.name, d.report_id) for d in reports),
            late=(un, planner.late[i].report_id) if i in planner.late else None,
            bridge=(un, planner.bridge[i].report_id) if i in planner.bridge else None,
        )
        for i, (phase, reports) in enumerate(planner.incidents)
    )
    duplicates = len(filed) - len(drafts) - len(resubmitted) - len(garbage)
    dead = dict(Counter(reason for reason, _ in garbage))
    return Scenario(lines, incidents, Expected(len(lines), len(drafts), duplicates, len(resubmitted), dead,
                                               len(incidents)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.runtime.scenario", description="demo scenario")
    parser.add_argument("--out", type=Path, default=SCENARIO_PATH, help="file to write or check")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not what is generated")
    args = parser.parse_args(argv)
    scenario = build()
    if scenario.tally != EXPECTED:
        print(f"EXPECTED in {__name__} is stale; the generator now gives {scenario.tally}", file=sys.stderr)
        return 1
    rendered = scenario.render()
    if args.check:
        if not args.out.exists() or args.out.read_bytes() != rendered:
            print(f"{args.out} is stale: run python -m services.runtime.scenario", file=sys.stderr)
            return 1
        return 0
    args.out.write_bytes(rendered)
    print(f"wrote {len(scenario.lines)} lines to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

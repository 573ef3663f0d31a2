"""The demo's planner: incidents placed so that the link rule rebuilds exactly them (see the package)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.ceasefire import Ceasefire, Sector, great_circle_km
from services.console.demo.story import (
    BORDER,
    BRIDGE_AT,
    FRONTS,
    LATE_AT,
    PHASES,
    PLACES,
    SOURCES,
    TEMPLATES,
    WEAPON,
    Expected,
    Phase,
    Source,
)


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

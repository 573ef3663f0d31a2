"""The demo's story: the ceasefire, its sources and places, and the phases of five days (see the package)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

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

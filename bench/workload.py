"""The benchmark's report mix: seeded, fast to make, and shaped like a real feed.

Reports come in *engagements*: three to eight reports of one exchange of fire from the two parties and
sometimes an observer, up to ten minutes and a kilometre or two apart, so the link rule has incidents to build.
Engagements are spread uniformly over the ceasefire's bounding box and over `days` of event time (the
density of 1,000,000 reports in 30 days: ~23 a minute), roughly in event-time order. Of the records,
~10 % repeat an earlier report (half exact copies, half resubmissions with a new id) and ~3 % are
garbage that validation dead-letters. ~3 % of the engagements belong to a second ceasefire, so
correlation has two keys to spread over partitions (it is keyed by ceasefire).

`build(n, days, seed)` returns the records as (key, value) bytes; nothing here imports faust.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
DUPLICATE_SHARE = 0.10
GARBAGE_SHARE = 0.03
REPORTS_PER_ENGAGEMENT = 39 / 7  # mean of the sizes drawn in `_Mix.engagement`
# One roll makes one garbage record, one repeat or a whole engagement: solve for the record shares.
_ENGAGEMENTS = (1 - GARBAGE_SHARE - DUPLICATE_SHARE) / REPORTS_PER_ENGAGEMENT
GARBAGE_ROLL = GARBAGE_SHARE / (GARBAGE_SHARE + DUPLICATE_SHARE + _ENGAGEMENTS)
DUPLICATE_ROLL = DUPLICATE_SHARE / (GARBAGE_SHARE + DUPLICATE_SHARE + _ENGAGEMENTS)


@dataclass(frozen=True)
class Theatre:
    ceasefire_id: str
    box: tuple[float, float, float, float]  # min_lat, min_lon, max_lat, max_lon
    sources: tuple[tuple[str, str], ...]  # (source, party); party NEUTRAL accuses nobody
    parties: tuple[str, str]


THEATRES = (
    Theatre(
        "in-pk-2025-05-10",
        (31.6, 72.6, 35.9, 76.4),
        (("in.army", "IN"), ("in.bsf", "IN"), ("pk.ispr", "PK"), ("pk.rangers", "PK"), ("un.unmogip", "NEUTRAL"),
         ("media.dawn", "PK"), ("media.thehindu", "IN")),
        ("IN", "PK"),
    ),
    Theatre(
        "il-lb-2024-11-27",
        (32.85, 34.95, 33.55, 35.95),
        (("il.idf", "IL"), ("lb.army", "LB"), ("un.unifil", "NEUTRAL")),
        ("IL", "LB"),
    ),
)
VIOLATIONS = ("small_arms", "sniper", "mortar", "artillery", "drone", "heavy_machine_gun", "infiltration")
GARBAGE = (
    b"\x89PNG\r\n\x1a\n\x00\xfe",
    b'{"report_id": "x-1", "source": ',
    b"42",
    b"",
)


@dataclass(frozen=True)
class Workload:
    records: list[tuple[bytes | None, bytes]]
    valid: int  # unique valid reports (what ingest accepts)
    duplicates: int
    garbage: int
    days: float

    def __len__(self) -> int:
        return len(self.records)


class _Mix:
    def __init__(self, seed: int, n: int, days: float) -> None:
        self.rng = random.Random(seed)
        self.n = n
        self.span_s = days * 86400.0
        self.serial = 0
        self.recent: list[tuple[bytes, dict[str, object]]] = []  # (key, doc) of recent originals

    def engagement(self, at_s: float) -> Iterator[dict[str, object]]:
        rng = self.rng
        theatre = THEATRES[0] if rng.random() < 0.97 else THEATRES[1]
        min_lat, min_lon, max_lat, max_lon = theatre.box
        lat, lon = rng.uniform(min_lat, max_lat), rng.uniform(min_lon, max_lon)
        for _ in range(rng.choice((3, 4, 5, 6, 6, 7, 8))):
            source, party = rng.choice(theatre.sources)
            if party == "NEUTRAL":
                accused: str | None = rng.choice(theatre.parties)
            else:
                accused = theatre.parties[1] if party == theatre.parties[0] else theatre.parties[0]
            observed = START + timedelta(seconds=at_s + rng.uniform(0, 600))
            self.serial += 1
            yield {
                "report_id": f"b-{self.serial:08d}",
                "source": source,
                "source_party": party,
                "accused_party": accused,
                "ceasefire_id": theatre.ceasefire_id,
                "observed_at": observed.isoformat(),
                "location": {
                    "lat": round(min(max(lat + rng.uniform(-0.01, 0.01), min_lat), max_lat), 4),
                    "lon": round(min(max(lon + rng.uniform(-0.01, 0.01), min_lon), max_lon), 4),
                    "precision_km": 2,
                },
                "violation_type": rng.choice(VIOLATIONS),
                "casualties": {"killed": rng.choice((0, 0, 0, 1)), "injured": rng.randrange(3)},
                "description": f"Report {self.serial}: fire across the line near post {rng.randrange(999)}.",
            }

    def repeat(self) -> tuple[bytes, bytes]:
        key, doc = self.rng.choice(self.recent)
        if self.rng.random() < 0.5:
            return key, orjson.dumps(doc)
        self.serial += 1
        again = dict(doc, report_id=f"{doc['report_id']}-re{self.serial}")
        return key, orjson.dumps(again)


def build(n: int, days: float = 1.0, seed: int = 20250510) -> Workload:
    """About `n` records over `days` of event time, in the proportions of the module docstring."""
    mix = _Mix(seed, n, days)
    records: list[tuple[bytes | None, bytes]] = []
    valid = duplicates = garbage = 0
    rng = mix.rng
    while len(records) < n:
        roll = rng.random()
        if roll < GARBAGE_ROLL:
            records.append((None, rng.choice(GARBAGE)))
            garbage += 1
        elif roll < GARBAGE_ROLL + DUPLICATE_ROLL and mix.recent:
            records.append(mix.repeat())  # same key as the original: same partition, after it
            duplicates += 1
        else:
            at_s = mix.span_s * len(records) / n
            for doc in mix.engagement(at_s):
                key = str(doc["source"]).encode()
                records.append((key, orjson.dumps(doc)))
                valid += 1
                mix.recent.append((key, doc))
                if len(mix.recent) > 200:
                    mix.recent.pop(0)
    return Workload(records=records, valid=valid, duplicates=duplicates, garbage=garbage, days=days)

"""A seeded mixed stream for ingest, each record with the outcome it must have, and the books to check it.

`mixed_stream(n, seed)` returns records (key, value) and, for each, where it must end: accepted,
duplicate (by rule) or dead-lettered (by reason). Expectations are written down by construction,
not computed with the code under test, so a wrong rule in validation or dedup makes a test fail.

Dedup is first-one-wins in processing order, and Kafka orders records only within a partition. So
every report that is later repeated carries a non-None key, and its repeats carry the same key: they
share an input partition and the original is always processed first, even with two workers. Reports
that are never repeated (and most garbage) may have a None key and land anywhere.

`Ledger.read(settings)` reads the three output topics and the input topic back, and says which input
record ended where (dead letters point at their input by the Kafka Connect headers, duplicates by
`origin`, accepted reports by `(source, report_id)`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.topics import Role
from services.runtime.broker import free_port
from services.runtime.settings import Settings
from tests.support.kafka import Record, read_topic
from tests.support.reports import START, encode, report
from tests.support.worker import WorkerProcess

Outcome = Literal["accepted", "duplicate", "dead_lettered"]
Identity = tuple[str, str]  # (source, report_id)
Position = tuple[int, int]  # (partition, offset) in the input topic

# Spread over all four by-source partitions (crc32 % 4: 1, 3, 0, 1, 2, 3, 1, 2).
SOURCES: dict[str, str] = {
    "in.army": "IN",
    "pk.ispr": "PK",
    "un.unmogip": "NEUTRAL",
    "media.dawn": "PK",
    "in.bsf": "IN",
    "media.thehindu": "IN",
    "pk.rangers": "PK",
    "in.pib": "IN",
}
SECTORS = ("Poonch", "rajouri", "KUPWARA", "Baramulla/Uri", "Neelum", "Kotli", "Sialkot", "Samba")
VIOLATIONS = ("small_arms", "sniper", "mortar", "artillery", "drone", "infiltration", "heavy_machine_gun")
MIB = 1024 * 1024
IST = timezone(timedelta(hours=5, minutes=30))


@dataclass(frozen=True)
class Expected:
    outcome: Outcome
    detail: str = ""  # duplicate: the rule; dead letter: the reason
    identity: Identity | None = None  # valid reports only


@dataclass(frozen=True)
class Sent:
    key: bytes | None
    value: bytes | None
    expected: Expected


@dataclass
class MixedStream:
    records: list[Sent] = field(default_factory=list)

    @property
    def pairs(self) -> list[tuple[bytes | None, bytes | None]]:
        return [(r.key, r.value) for r in self.records]

    def count(self, outcome: Outcome) -> int:
        return sum(r.expected.outcome == outcome for r in self.records)

    @property
    def accepted(self) -> set[Identity]:
        return {r.expected.identity for r in self.records if r.expected.outcome == "accepted"}  # type: ignore[misc]

    @property
    def originals(self) -> list[Sent]:
        return [r for r in self.records if r.expected.outcome == "accepted"]

    def duplicates(self) -> Counter[tuple[str, str, str]]:
        """(source, report_id, rule) of every expected repeat."""
        return Counter(
            (*r.expected.identity, r.expected.detail)  # type: ignore[misc]
            for r in self.records
            if r.expected.outcome == "duplicate"
        )

    def dead_letters(self) -> Counter[tuple[bytes | None, bytes | None, str]]:
        return Counter((r.key, r.value, r.expected.detail) for r in self.records if r.expected.outcome == "dead_lettered")

    def reasons(self) -> Counter[str]:
        return Counter(r.expected.detail for r in self.records if r.expected.outcome == "dead_lettered")


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.stream = MixedStream()
        self.repeatable: list[Sent] = []  # originals with a key: their repeats can be ordered after them
        self.serial = 0
        self.corroborated: set[bytes] = set()

    def add(self, key: bytes | None, value: bytes | None, expected: Expected) -> Sent:
        sent = Sent(key, value, expected)
        self.stream.records.append(sent)
        return sent

    def key(self) -> bytes:
        """Varied non-None keys: text, empty, binary, long."""
        n = self.serial
        return self.rng.choice(
            (f"k-{n}".encode(), b"", bytes([n % 256, 0xFF, 0x00]), self.rng.choice(list(SOURCES)).encode(), b"x" * 300)
        )

    def valid_doc(self) -> dict[str, Any]:
        rng, n = self.rng, self.serial
        source = rng.choice(list(SOURCES))
        party = SOURCES[source]
        accused = rng.choice(("IN", "PK")) if party == "NEUTRAL" else ("PK" if party == "IN" else "IN")
        observed = START + timedelta(minutes=n % 2000, seconds=rng.randrange(60))
        overrides: dict[str, Any] = {
            "report_id": f"{source.split('.')[0]}-{n:06d}",
            "source": source,
            "source_party": party,
            "accused_party": accused,
            "observed_at": observed.isoformat() if rng.random() < 0.5 else observed.astimezone(IST).isoformat(),
            "violation_type": rng.choice(VIOLATIONS),
            "description": f"Report {n}: firing across the line near post {rng.randrange(999)}.",
        }
        if rng.random() < 0.5:
            overrides["location"] = {"sector": rng.choice(SECTORS)}
        else:
            overrides["location"] = {"lat": round(rng.uniform(32.0, 35.5), 4), "lon": round(rng.uniform(73.0, 76.0), 4)}
        if rng.random() < 0.3:
            overrides["casualties"] = ...
        return report(**overrides)

    def original(self) -> None:
        doc = self.valid_doc()
        keyed = self.rng.random() < 0.8
        sent = self.add(self.key() if keyed else None, encode(doc), _accepted(doc))
        if keyed:
            self.repeatable.append(sent)

    def exact_repeat(self) -> None:
        first = self.rng.choice(self.repeatable)
        self.add(first.key, first.value, Expected("duplicate", "exact", first.expected.identity))

    def resubmission(self) -> None:
        """Same source, same content, a new report_id; case and spacing of the text may differ."""
        first = self.rng.choice(self.repeatable)
        doc = orjson.loads(first.value)  # type: ignore[arg-type]
        doc["report_id"] = f"{doc['report_id']}-re{self.serial}"
        if self.rng.random() < 0.5:
            doc["description"] = "  " + doc["description"].upper().replace(" ", "   ") + " "
        self.add(first.key, encode(doc), Expected("duplicate", "resubmission", (doc["source"], doc["report_id"])))

    def corroboration(self) -> None:
        """The same content from another source is not a duplicate: correlation's business, not ours."""
        first = self.rng.choice(self.repeatable)
        doc = orjson.loads(first.value)  # type: ignore[arg-type]
        source = "un.unmogip"
        if doc["source"] == source or first.value in self.corroborated:
            return  # a second copy would be a resubmission by un.unmogip
        self.corroborated.add(first.value)  # type: ignore[arg-type]
        doc.update(source=source, source_party=SOURCES[source], report_id=f"co-{self.serial:06d}")
        self.add(self.key(), encode(doc), _accepted(doc))

    def garbage(self, kind: str) -> None:
        maker, reason = GARBAGE[kind]
        # A tombstone needs a key: Kafka clients refuse a record with neither.
        key = None if self.rng.random() < 0.4 and kind != "tombstone" else self.key()
        self.add(key, maker(self), Expected("dead_lettered", reason))


def _accepted(doc: dict[str, Any]) -> Expected:
    return Expected("accepted", "", (doc["source"], doc["report_id"]))


def _valid_bytes(b: _Builder, **overrides: Any) -> bytes:
    doc = b.valid_doc()
    doc.update(overrides)
    return encode(doc)


def _padded(b: _Builder, size: int) -> bytes:
    """A report that would be valid but for its size: exactly `size` bytes."""
    doc = b.valid_doc()
    doc["extensions"] = {"pad": ""}
    base = len(encode(doc))
    doc["extensions"]["pad"] = "p" * (size - base)
    raw = encode(doc)
    assert len(raw) == size
    return raw


def _not_utf8(b: _Builder) -> bytes:
    doc = b.valid_doc()
    doc["description"] = "Caf\u00e9 near the bridge \u2013 firing"
    return orjson.dumps(doc).decode().encode("cp1252")


GARBAGE: dict[str, tuple[Any, str]] = {
    "binary": (lambda b: bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, b.serial % 256, 0xFE, 0xFF]), "not_utf8"),
    "not_utf8": (_not_utf8, "not_utf8"),
    "control_bytes": (lambda b: bytes([0, 1, 2, 3, b.serial % 100 + 1]), "not_json"),
    "truncated": (lambda b: _valid_bytes(b)[: b.rng.randrange(1, 200)], "not_json"),
    "one_mib": (lambda b: _padded(b, MIB), "too_large"),
    "just_over_64k": (lambda b: _padded(b, 64 * 1024 + 1), "too_large"),
    "wrong_type_killed": (lambda b: _valid_bytes(b, casualties={"killed": "3"}), "schema"),
    "wrong_type_lat": (lambda b: _valid_bytes(b, location={"lat": "33.7", "lon": 74.1}), "schema"),
    "wrong_type_time": (lambda b: _valid_bytes(b, observed_at=1746880000), "schema"),
    "missing_field": (lambda b: encode({k: v for k, v in orjson.loads(_valid_bytes(b)).items() if k != "source"}), "schema"),
    "ingested_at": (lambda b: _valid_bytes(b, ingested_at="2025-05-10T12:00:00Z"), "schema"),
    "unknown_ceasefire": (lambda b: _valid_bytes(b, ceasefire_id="xx-yy-1999-01-01"), "unknown_ceasefire"),
    "unknown_sector": (lambda b: _valid_bytes(b, location={"sector": "Atlantis"}), "unknown_sector"),
    "party_not_in_ceasefire": (lambda b: _valid_bytes(b, source="in.army", source_party="IN", accused_party="CN"), "party_not_in_ceasefire"),
    "self_accusation": (lambda b: _valid_bytes(b, source="pk.ispr", source_party="PK", accused_party="PK"), "self_accusation"),
    "latitude_out_of_range": (lambda b: _valid_bytes(b, location={"lat": 95.0, "lon": 74.0}), "coordinates_out_of_range"),
    "longitude_out_of_range": (lambda b: _valid_bytes(b, location={"lat": 33.0, "lon": -200.0}), "coordinates_out_of_range"),
    "outside_area": (lambda b: _valid_bytes(b, location={"lat": 51.5, "lon": -0.12}), "outside_ceasefire_area"),
    "far_future": (lambda b: _valid_bytes(b, observed_at="2099-01-01T00:00:00Z"), "future_observed_at"),
    "reported_before_observed": (lambda b: _valid_bytes(b, reported_at="2025-05-01T00:00:00Z"), "reported_before_observed"),
    "json_array": (lambda b: orjson.dumps([orjson.loads(_valid_bytes(b))]), "schema"),
    "json_scalar": (lambda b: b"42", "schema"),
    "empty": (lambda b: b"", "empty"),
    "tombstone": (lambda b: None, "empty"),
}
ONCE = {"one_mib"}  # broker memory only grows: one 1 MiB record is enough
COMMON_GARBAGE = [kind for kind in GARBAGE if kind not in ONCE and kind != "just_over_64k"]


def mixed_stream(n: int = 10_000, seed: int = 20250510) -> MixedStream:
    """About `n` records: ~55 % unique valid reports, ~20 % repeats, ~25 % garbage of every kind."""
    b = _Builder(seed)
    for _ in range(10):  # a pool of repeatable originals before any repeat is drawn
        b.serial += 1
        b.original()
    for kind in GARBAGE:  # every kind at least once, early, so a crash test meets them too
        b.serial += 1
        b.garbage(kind)
    while len(b.stream.records) < n:
        b.serial += 1
        roll = b.rng.random()
        if roll < 0.53:
            b.original()
        elif roll < 0.55:
            b.corroboration()
        elif roll < 0.65:
            b.exact_repeat()
        elif roll < 0.75:
            b.resubmission()
        elif roll < 0.752:
            b.garbage("just_over_64k")
        else:
            b.garbage(b.rng.choice(COMMON_GARBAGE))
    return b.stream


# ---------------------------------------------------------------- reading the books back


def connect_origin(record: Record) -> Position:
    return int(record.headers["__connect.errors.partition"]), int(record.headers["__connect.errors.offset"])


@dataclass
class Ledger:
    """What the service wrote, read back from its topics, indexed by where each input record went."""

    inputs: dict[Position, Record]
    accepted: list[Record]
    duplicates: list[Record]
    dead: list[Record]

    @classmethod
    async def read(cls, settings: Settings, min_inputs: int = 0, timeout: float = 60.0) -> Ledger:
        bootstrap = settings.bootstrap
        inputs = await read_topic(bootstrap, settings.topic(Role.REPORTS), min_inputs, timeout)
        return cls(
            inputs={(r.partition, r.offset): r for r in inputs},
            accepted=await read_topic(bootstrap, settings.topic(Role.ACCEPTED), 0, timeout),
            duplicates=await read_topic(bootstrap, settings.topic(Role.DUPLICATES), 0, timeout),
            dead=await read_topic(bootstrap, settings.topic(Role.DEAD_LETTERS), 0, timeout),
        )

    def accepted_identities(self) -> Counter[Identity]:
        docs = (orjson.loads(r.value) for r in self.accepted)  # type: ignore[arg-type]
        return Counter((d["source"], d["report_id"]) for d in docs)

    def duplicate_docs(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.duplicates]  # type: ignore[arg-type]

    def duplicate_origins(self) -> set[Position]:
        return {(d["origin"]["partition"], d["origin"]["offset"]) for d in self.duplicate_docs()}

    def dead_origins(self) -> set[Position]:
        return {connect_origin(r) for r in self.dead}

    def accepted_origins(self) -> set[Position]:
        """Where each accepted report was read (header `ceasefire.origin`, `partition:offset`)."""
        origins = (r.headers["ceasefire.origin"].decode().split(":") for r in self.accepted)
        return {(int(p), int(o)) for p, o in origins}

    def booked_twice(self) -> list[Position]:
        """Input records with more than one outcome (re-emits to the same outcome are allowed: a crash
        may re-emit; a record both accepted and a duplicate of itself is two outcomes)."""
        seen: Counter[Position] = Counter()
        for origins in (self.accepted_origins(), self.duplicate_origins(), self.dead_origins()):
            seen.update(origins)
        return sorted(position for position, n in seen.items() if n > 1)

    def unaccounted(self, stream: MixedStream) -> list[tuple[Position, Expected]]:
        """Input records that ended nowhere they may end: valid ones neither accepted (by identity)
        nor recorded as a duplicate (by origin), bad ones not dead-lettered (by origin)."""
        expected = _expected_by_bytes(stream)
        accepted, duplicated, dead = set(self.accepted_identities()), self.duplicate_origins(), self.dead_origins()
        missing: list[tuple[Position, Expected]] = []
        for position, record in self.inputs.items():
            exp = expected[(record.key, record.value)]
            if exp.outcome == "dead_lettered":
                ended = position in dead
            elif exp.outcome == "accepted":
                ended = exp.identity in accepted or position in duplicated
            else:
                ended = position in duplicated
            if not ended:
                missing.append((position, exp))
        return missing


def _expected_by_bytes(stream: MixedStream) -> dict[tuple[bytes | None, bytes | None], Expected]:
    """Identical (key, value) pairs always have the same expectation, except an exact repeat, whose
    bytes equal its original's: the original counts (it is the one that must not be lost)."""
    table: dict[tuple[bytes | None, bytes | None], Expected] = {}
    for r in stream.records:
        table.setdefault((r.key, r.value), r.expected)
    return table


async def group_lag(
    settings: Settings, roles: tuple[Role, ...] = (Role.REPORTS, Role.BY_SOURCE)
) -> dict[str, int]:
    """Records not yet committed by the service's consumer group, per "topic/partition" of `roles`
    (ends from a fetch high watermark: the broker's ListOffsets answer is wrong)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=settings.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic(role), p) for role in roles for p in range(settings.partitions)]
        ends = await _fetch_ends(consumer, tps)
        return {f"{tp.topic}/{tp.partition}": ends[tp] - ((await consumer.committed(tp)) or 0) for tp in tps}
    finally:
        await consumer.stop()


async def group_caught_up(settings: Settings, roles: tuple[Role, ...] = (Role.REPORTS, Role.BY_SOURCE)) -> bool:
    """True when the service's consumer group has committed every partition of `roles` up to its end."""
    return not any((await group_lag(settings, roles)).values())


async def _fetch_ends(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Fetch each partition from near its end, to learn the fetch high watermark."""
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)  # a lower bound on this broker; the fetch corrects it
    for tp in tps:
        consumer.seek(tp, max(0, await consumer.position(tp) - 1))
    ends: dict[TopicPartition, int] = {}
    while len(ends) < len(tps):
        await consumer.getmany(*[tp for tp in tps if tp not in ends], timeout_ms=200)
        ends.update({tp: hw for tp in tps if (hw := consumer.highwater(tp)) is not None})
    return ends


async def group_stable(settings: Settings, members: int) -> bool:
    """The consumer group is Stable with `members` members: assignment done, no rebalance pending."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([settings.app_id])
        (group,) = response.groups
        _error, _name, state, _protocol_type, _protocol, group_members = group[:6]
        return state == "Stable" and len(group_members) == members
    finally:
        await admin.close()


def replica(settings: Settings, data_dir: Path) -> Settings:
    """Another worker of the same app (same group and topics), with its own local state and web port."""
    return settings.model_copy(update={"data_dir": data_dir, "web_port": free_port()})


def rebalance_done(worker: WorkerProcess) -> bool:
    """The worker finished at least one rebalance and is not in one now (Faust's own gauges).

    The broker calls a group Stable before Faust has finished its side of the assignment (pausing,
    table recovery, resuming); records that arrive in that window are the ones at risk (see the
    ingest crash tests), so tests that count exactly produce only after this."""
    try:
        samples = worker.scrape()
    except OSError:
        return False
    value = {name: v for (name, labels), v in samples.items() if not labels}.get
    return (
        value("ceasefire_faust_rebalance_done_latency_count", 0.0) >= 1
        and value("ceasefire_faust_total_rebalances", 1.0) == 0
        and value("ceasefire_faust_total_rebalances_recovering", 1.0) == 0
    )

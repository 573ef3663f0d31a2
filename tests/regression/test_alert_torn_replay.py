"""A crash that tears a batch's alert-state writes, then a replay from an earlier committed offset.

Models what the alert shell does per `IncidentBatch` (services/alert/agent.py `alert_batch`): observe
the batch's incidents, advance to its watermark, publish the alerts (and the fragility snapshot if it
changed) and wait for the acknowledgements, store `take_changes()` in its order, commit. The crash stops
the last batch's store after any entry (its records are already published); the restarted worker
rebuilds the engine from the stored entries and re-reads from any batch boundary at or before the torn
batch. Found here, broker-free, before the write journal existed: a crash that kept the batch's
incident summaries and watermark but not its alert episodes left a state no uncrashed run ever had.
Re-processing skipped the stored incidents and re-evaluated the rules at the later watermark, so one
`(fingerprint, version)` was published again with another content (`updated_at`, annotations), and
the alerts of the torn batch were lost or came out different for good.

Every field of an `Alert` and a `FragilitySnapshot` is event time (no wall clock), so records are
compared whole.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from schemas.alert import Alert
from schemas.ceasefire import Ceasefire, Registry
from schemas.fragility import FragilitySnapshot
from schemas.incident import Incident
from services.alert import journal
from services.alert.rules import AlertEngine, AlertRules
from services.correlate.state import Correlator
from tests.integration.test_correlate_crash import CEASEFIRE, stream
from tests.support.incidents import at
from tests.support.versions import newest
from tests.unit.test_alert_incremental import RULES, realistic

Batch = tuple[list[Incident], datetime | None]  # one IncidentBatch: its incidents, then its watermark
EVICT_EVERY_SECONDS = 300  # as the correlate shell evicts


@dataclass
class Shell:
    """The alert shell around one engine: what it published and what its table holds."""

    engine: AlertEngine
    table: dict[str, str] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    snapshots: list[FragilitySnapshot] = field(default_factory=list)
    last: FragilitySnapshot | None = None  # the snapshot published last (or warmed after a restart)

    def publish(self, batch: Batch) -> list[Alert]:
        """observe / advance, then publish: the records and a changed snapshot."""
        incidents, watermark = batch
        emitted = [a for incident in incidents for a in self.engine.observe(incident)]
        if watermark is not None:
            emitted += self.engine.advance(watermark)
        self.alerts += emitted
        snapshot = self.engine.fragility()
        if snapshot != self.last:
            self.snapshots.append(snapshot)
            self.last = snapshot
        return emitted

    def store(self, entries: list[tuple[str, str | None]]) -> None:
        for key, value in entries:
            if value is None:
                self.table.pop(key, None)
            else:
                self.table[key] = value

    def process(self, batch: Batch) -> list[Alert]:
        emitted = self.publish(batch)
        self.store(list(self.engine.take_changes().items()))
        return emitted


@dataclass
class Crashed:
    shell: Shell  # after the replay
    replayed: list[Alert]  # published while re-processing batches stored before the crash
    entries: int  # how many entries the torn batch had


def crash_and_replay(
    ceasefire: Ceasefire, rules: AlertRules, batches: list[Batch], kill: int, cut: int, replay_from: int
) -> Crashed:
    """Batches before `kill` processed and stored; batch `kill` published, then `cut` of its entries
    stored; a new engine from the table re-processes from batch `replay_from` (<= kill) to the end."""
    shell = Shell(AlertEngine(ceasefire, rules))
    for batch in batches[:kill]:
        shell.process(batch)
    shell.publish(batches[kill])
    torn = list(shell.engine.take_changes().items())
    shell.store(torn[:cut])
    shell.engine = AlertEngine(ceasefire, rules, store=shell.table.items())
    shell.last = shell.engine.fragility()  # the stage warms its snapshots after a restore
    replayed = [a for batch in batches[replay_from:kill] for a in shell.process(batch)]
    for batch in batches[kill:]:
        shell.process(batch)
    return Crashed(shell, replayed, len(torn))


def latest(alerts: list[Alert]) -> dict[str, Alert]:
    return newest(alerts, lambda alert: alert.fingerprint)


def assert_as_uncrashed(crashed: Crashed, clean: Shell) -> None:
    shell = crashed.shell
    contents: dict[tuple[str, int], Alert] = {}
    for alert in shell.alerts:
        earlier = contents.setdefault((alert.fingerprint, alert.version), alert)
        assert earlier == alert, (
            f"{alert.alertname} {alert.fingerprint} v{alert.version} published with two contents"
        )
    assert latest(shell.alerts) == latest(clean.alerts), "the alerts do not end as without the crash"
    assert contents == {(a.fingerprint, a.version): a for a in clean.alerts}, (
        "a record lost, or one no run has"
    )
    engine, want = shell.engine, clean.engine
    assert engine.book.episodes == want.book.episodes, "episodes (peaks, holds) differ from the uncrashed run"
    assert engine.fragility() == want.fragility()
    published = {(a.fingerprint, a.version): a for a in clean.alerts}
    assert all(published.get((a.fingerprint, a.version)) == a for a in crashed.replayed), (
        "re-processing a stored batch published a new record"
    )
    assert set(map(repr, shell.snapshots)) <= set(map(repr, clean.snapshots)), (
        "a snapshot no run should publish"
    )


def correlated(ceasefire: Ceasefire, reports: int, per: int) -> list[Batch]:
    """`stream()` through the correlator as its shell does: per `per` reports, one batch of the changed
    incidents ("merged" first) with the watermark; evictions every 5 min of event time."""
    correlator = Correlator(ceasefire)
    batches: list[Batch] = []
    pending: list[Incident] = []
    evicted = None
    for n, report in enumerate(stream(reports)):
        pending += sorted(correlator.add(report), key=lambda i: i.status != "merged")
        mark = correlator.watermark.timestamp() if correlator.watermark is not None else None
        evicted = mark if evicted is None else evicted
        if mark is not None and mark - evicted >= EVICT_EVERY_SECONDS:
            evicted = mark
            correlator.evict()
        if n % per == per - 1 or n == reports - 1:
            batches.append((pending, correlator.watermark))
            pending = []
    return batches


def grouped(hours: float, seed: int, per: int) -> list[Batch]:
    """`realistic()` incident versions (several sectors, casualties, merges), a batch every ~`per`
    watermarks; a stream long enough that incidents are forgotten and resolved alerts retired."""
    rnd = random.Random(seed)
    batches: list[Batch] = []
    pending: list[Incident] = []
    for step in realistic(rate=2.5, hours=hours, seed=seed):
        if isinstance(step, Incident):
            pending.append(step)
        elif rnd.random() < 1 / per:
            batches.append((pending, at(step)))
            pending = []
    return [*batches, (pending, None)] if pending else batches


RETIRING = AlertRules(episode_retention=timedelta(hours=20))
SCENARIOS = {  # name: rules, how to make the batches
    "correlated-50": (AlertRules(), lambda c: correlated(c, 900, 50)),
    "correlated-400": (AlertRules(), lambda c: correlated(c, 900, 400)),  # a restart catching up
    "realistic-3": (RETIRING, lambda c: grouped(60, 1, 3)),
    "realistic-20": (RETIRING, lambda c: grouped(60, 2, 20)),
    "tight": (RULES["tight"], lambda c: grouped(40, 3, 4)),
}


@pytest.fixture(scope="module")
def ceasefire(registry: Registry) -> Ceasefire:
    found = registry.get(CEASEFIRE)
    assert found is not None
    return found


_RUNS: dict[str, tuple[AlertRules, list[Batch], Shell]] = {}


def scenario(ceasefire: Ceasefire, name: str) -> tuple[AlertRules, list[Batch], Shell]:
    """The rules, the batches and the uncrashed run of a scenario (computed once per session)."""
    if name not in _RUNS:
        rules, make = SCENARIOS[name]
        batches = make(ceasefire)
        clean = Shell(AlertEngine(ceasefire, rules))
        for batch in batches:
            clean.process(batch)
        _RUNS[name] = rules, batches, clean
    return _RUNS[name]


def check(ceasefire: Ceasefire, name: str, kill: int, cut: int, replay_from: int) -> None:
    rules, batches, clean = scenario(ceasefire, name)
    assert_as_uncrashed(crash_and_replay(ceasefire, rules, batches, kill, cut, replay_from), clean)


@pytest.mark.parametrize(
    ("name", "kill", "cut", "replay_from"),
    [
        # found by the search on the code before the journal (cut counted in its entries)
        ("correlated-50", 5, 18, 0),  # MutualAccusation v2 again, with a later updated_at
        ("correlated-400", 1, 51, 0),  # a big batch: lost records, peaks differ
        ("realistic-20", 1, 1, 0),  # one summary stored: CeasefireViolation v11 with other annotations
        ("realistic-3", 8, 33, 7),
        ("tight", 6, 28, 3),  # forgetting and retention under short holds
    ],
)
def test_a_torn_store_then_replay_publishes_as_without_the_crash(
    ceasefire: Ceasefire, name: str, kill: int, cut: int, replay_from: int
) -> None:
    check(ceasefire, name, kill, cut, replay_from)


def random_crashes(ceasefire: Ceasefire, name: str, seed: int, count: int, tears: Callable[[list[str]], int]) -> None:
    """`count` seeded crashes (kill batch, tear point up to `tears(the torn batch's keys)`, replay offset)."""
    rules, batches, _ = scenario(ceasefire, name)
    rng = random.Random(seed)
    for _ in range(count):
        kill = rng.randrange(1, len(batches))
        probe = Shell(AlertEngine(ceasefire, rules))
        for batch in batches[:kill]:
            probe.process(batch)
        probe.publish(batches[kill])
        cut = rng.randrange(tears(list(probe.engine.take_changes())) + 1)
        check(ceasefire, name, kill, cut, rng.randrange(0, kill + 1))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_random_crashes_publish_as_without_the_crash(ceasefire: Ceasefire, name: str) -> None:
    """A seeded sample of the broker-free search (kill batch, tear point, replay offset); the first and
    last tear points (nothing, everything) are the untorn cases."""
    random_crashes(ceasefire, name, 20261126, 3, len)


def within_the_parts(keys: list[str]) -> int:
    assert keys.index(journal.JOURNAL) > 0, "no journal in parts"
    return keys.index(journal.JOURNAL)  # a tear among the parts, or just before the head


@pytest.mark.parametrize("name", ["correlated-400", "realistic-3"])
def test_random_crashes_with_journals_in_parts_publish_as_without_the_crash(
    ceasefire: Ceasefire, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same search with every journal cut into parts (a backlog's batch on Apache Kafka's 1 MB
    record limit): a tear among the parts must leave the engine where the batch began."""
    monkeypatch.setattr(journal, "PART_BYTES", 2_000)
    random_crashes(ceasefire, name, 20261203, 4, within_the_parts)

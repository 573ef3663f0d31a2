"""Per-ceasefire state kept in one changelogged table, shared by the correlate and alert stages.

Each ceasefire's state object (a `Correlator`, an `AlertEngine`) persists entries through
`take_changes()`; here they are stored as `<ceasefire_id>\\x1f<key>` in a `FencedTable`. The objects
live in memory for the ceasefires whose partition this worker owns: built from the table on first
use, or beside the agents right after a restore (`warm`), and dropped when the partition is revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Generic, TypeVar

import faust
from faust.types import TP

from schemas.ceasefire import Ceasefire, Registry
from schemas.topics import Role
from services.runtime.state import FencedTable, fenced_table, key_partition, owned_partitions
from services.store import StateStore

SEP = "\x1f"
YIELD_EVERY = 20_000  # table entries read between two turns of the loop
if TYPE_CHECKING:
    from services.runtime.context import Context

log = logging.getLogger(__name__)
S = TypeVar("S")


class CeasefireStates(Generic[S]):
    def __init__(
        self,
        app: faust.App,
        registry: Registry,
        table_name: str,
        topic: str,
        partitions: int,
        build: Callable[[Ceasefire, StateStore], S],
    ) -> None:
        """`build(ceasefire, its store)` makes a state (services/store.py: the one state contract)."""
        self.app = app
        self.registry = registry
        self.topic = topic  # the input topic whose partitions decide ownership
        self.partitions = partitions
        self.build = build
        self.table = fenced_table(app, table_name, partitions=partitions, key_type=str, value_type=str)
        self.states: dict[str, S] = {}
        self.partition_of: dict[str, int] = {}
        self._building: dict[str, asyncio.Future[None]] = {}  # ceasefire id → its build in a thread

    @classmethod
    def of_stage(
        cls,
        app: faust.App,
        ctx: Context,
        table_name: str,
        input_role: Role,
        build: Callable[[Ceasefire, StateStore], S],
    ) -> CeasefireStates[S]:
        """A stage's states: in table `table_name`, owned with the partitions of its input topic."""
        settings = ctx.settings
        return cls(app, ctx.registry, table_name, settings.topic(input_role), settings.partitions, build)

    def get(self, ceasefire_id: str, partition: int) -> S | None:
        """The state of a ceasefire (built from the table if needed); None for one not in the registry."""
        found = self.states.get(ceasefire_id)
        if found is None:
            ceasefire = self.registry.get(ceasefire_id)
            if ceasefire is None:
                return None  # no scan for an unknown ceasefire
            prefix = ceasefire_id + SEP
            persisted = [(k[len(prefix) :], v) for k, v in self.table.partition_items(partition) if k.startswith(prefix)]
            found = self._build(ceasefire, partition, persisted)
        return found

    def _build(self, ceasefire: Ceasefire, partition: int, persisted: list[tuple[str, str]]) -> S:
        return self._keep(ceasefire, partition, self.build(ceasefire, self._store(ceasefire.id, partition, persisted)))

    def _store(self, ceasefire_id: str, partition: int, entries: list[tuple[str, str]]) -> CeasefireEntries:
        return CeasefireEntries(self.table, partition, ceasefire_id + SEP, entries)

    def _keep(self, ceasefire: Ceasefire, partition: int, state: S) -> S:
        self.states[ceasefire.id] = state
        self.partition_of[ceasefire.id] = partition
        return state

    async def built(self, wanted: Iterable[tuple[str, int]]) -> None:
        """Build the states of these `(ceasefire id, partition)` not built yet, or wait for their builds
        in flight, without holding the loop: an agent calls this before `get`, which then finds them
        (or, should a build fail, builds on the loop itself)."""
        for ceasefire_id, partition in dict(wanted).items():
            if ceasefire_id in self.states or (ceasefire := self.registry.get(ceasefire_id)) is None:
                continue
            building = self._building.get(ceasefire_id)
            if building is None:
                entries = (await self._partition_entries(partition, only=ceasefire_id)).get(ceasefire_id, [])
                building = self._building.get(ceasefire_id)  # warm may have started it meanwhile
                if building is None and ceasefire_id not in self.states:
                    with contextlib.suppress(Exception):  # `get` builds it again and raises the failure
                        await self._build_beside(ceasefire, partition, entries)
                    continue
            if building is not None:
                await asyncio.wait([building])

    def discard(self, ceasefire_id: str) -> None:
        """Drop one state that may hold changes never stored (its logic raised midway): the next
        `built`/`get` rebuilds it from the table, i.e. as it was after the last stored batch."""
        self.states.pop(ceasefire_id, None)
        self.partition_of.pop(ceasefire_id, None)
        self._building.pop(ceasefire_id, None)  # a build in flight is not kept when it ends

    def forget(self, revoked: set[TP]) -> list[str]:
        """Drop the states of revoked partitions (and void their builds); returns their ceasefire ids."""
        gone = {tp.partition for tp in revoked if tp.topic == self.topic}
        dropped = [c for c, p in self.partition_of.items() if p in gone]
        for ceasefire_id in dropped:
            self.states.pop(ceasefire_id, None)
            self.partition_of.pop(ceasefire_id, None)
        self._building.clear()  # warm is cancelled with the revocation: what it still builds is not kept
        return dropped

    async def warm(self) -> list[str]:
        """After a restore, build the states of every owned ceasefire found in the table.

        One pass over each owned partition's store (raw RocksDB iteration): Faust's table iteration,
        once to find the ceasefires and again per ceasefire for its entries, took ~10 s of a restart
        with 1,000,000 reports' worth of state. It runs beside the agents (`follow_rebalances`): the
        read gives the loop back every `YIELD_EVERY` entries and each build runs in a thread, so
        validation and dedup, which need none of it, go on; an agent that needs a ceasefire not built
        yet waits for its build here or starts one itself (`built`). A state built here is kept only if
        no agent built it meanwhile, and an agent writes a ceasefire's entries only once its state is
        built, so no state is kept that was built from entries older than a write."""
        built = []
        for partition in sorted(owned_partitions(self.app, self.topic)):
            for ceasefire_id, entries in sorted((await self._partition_entries(partition)).items()):
                ceasefire = self.registry.get(ceasefire_id)
                if ceasefire is None:
                    continue  # gone from the registry since its entries were stored
                if ceasefire_id not in self.states:
                    await self._build_beside(ceasefire, partition, entries)
                built.append(ceasefire_id)
                await asyncio.sleep(0)
            await asyncio.sleep(0)
        return built

    async def _build_beside(self, ceasefire: Ceasefire, partition: int, entries: list[tuple[str, str]]) -> None:
        """Build in a thread: one ceasefire is seconds at a million reports (a Correlator restores
        ~400K remembered identities), and the loop must keep validating meanwhile. The thread reads
        only `entries` and makes a new object; it is kept only if no agent built this ceasefire and no
        revocation came while it ran (the build is shielded from warm's cancellation: an agent may be
        waiting for it in `built`)."""

        async def build() -> None:
            state = await asyncio.to_thread(self.build, ceasefire, self._store(ceasefire.id, partition, entries))
            if self._building.get(ceasefire.id) is task and ceasefire.id not in self.states:
                self._keep(ceasefire, partition, state)

        task = asyncio.ensure_future(build())
        self._building[ceasefire.id] = task
        try:
            await asyncio.shield(task)
        finally:
            if self._building.get(ceasefire.id) is task and task.done():
                del self._building[ceasefire.id]

    async def _partition_entries(self, partition: int, only: str | None = None) -> dict[str, list[tuple[str, str]]]:
        """Each ceasefire's entries (or `only` one's) in one partition's store, in one pass that gives the
        loop back every `YIELD_EVERY` entries (a RocksDB iterator reads one snapshot; the memory store
        yields a copy of every partition's entries: those of ceasefires homed elsewhere are skipped)."""
        persisted: dict[str, list[tuple[str, str]]] = {}
        home: dict[str, int] = {}  # ceasefire id → its partition (murmur2 in Python: once per ceasefire)
        for n, (key, value) in enumerate(self.table.partition_items(partition), 1):
            if not n % YIELD_EVERY:
                await asyncio.sleep(0)
            ceasefire_id, sep, rest = key.partition(SEP)
            if not sep or (only is not None and ceasefire_id != only):
                continue
            where = home.get(ceasefire_id)
            if where is None:
                where = home[ceasefire_id] = key_partition(ceasefire_id, self.partitions)
            if where == partition:
                persisted.setdefault(ceasefire_id, []).append((rest, value))
        return persisted

    def follow_rebalances(
        self, on_forget: Callable[[list[str]], None], on_warm: Callable[[list[str]], None]
    ) -> None:
        """Drop states when partitions go; build them beside the agents when a restore completes,
        then tell the stage. A revocation cancels a build still running."""
        warming: list[asyncio.Future[None]] = []

        async def build_then_tell() -> None:
            on_warm(await self.warm())

        def stop_warming() -> None:
            while warming:
                warming.pop().cancel()

        async def warm() -> None:
            stop_warming()
            task = asyncio.ensure_future(build_then_tell())
            task.add_done_callback(_log_failure)
            warming.append(task)

        async def forget(sender: faust.App, revoked: set[TP], **_: object) -> None:
            stop_warming()
            on_forget(self.forget(revoked))

        self.table.on_recover(warm)
        self.app.on_partitions_revoked.connect(forget)

    def store(self, ceasefire_id: str, changes: dict[str, str | None]) -> None:
        """Write entries in the order given (it matters: see services/correlate/state.py)."""
        prefix = ceasefire_id + SEP
        self.table.write_entries(self.partition_of[ceasefire_id], {prefix + k: v for k, v in changes.items()})


def _log_failure(task: asyncio.Future[None]) -> None:
    """A failed warm-up costs only time: each agent builds the states it needs on first use."""
    if not task.cancelled() and task.exception() is not None:
        log.error("building ceasefire states after a restore failed", exc_info=task.exception())


class CeasefireEntries:
    """One ceasefire's entries as a `StateStore` (services/store.py): `scan` reads the entries read for
    its build (read in chunks off the loop, then built in a thread: see `warm`), `get` and `apply` go
    to the table, under the ceasefire's prefix."""

    def __init__(self, table: FencedTable, partition: int, prefix: str, entries: list[tuple[str, str]]) -> None:
        self.table, self.partition, self.prefix, self.entries = table, partition, prefix, entries

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.table.entry(self.partition, self.prefix + key)
        return default if value is None else value

    def scan(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        return ((key, value) for key, value in self.entries if key.startswith(prefix))

    def apply(self, changes: Mapping[str, str | None]) -> None:
        self.table.write_entries(self.partition, {self.prefix + k: v for k, v in changes.items()})

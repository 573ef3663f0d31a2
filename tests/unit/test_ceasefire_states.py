"""States built beside the agents after a restore: one build per ceasefire, none kept after a revocation."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import faust
import pytest
from faust.types import TP

from schemas.ceasefire import Ceasefire, load_registry
from services.runtime.ceasefire_state import CeasefireStates
from services.store import StateStore

REGISTRY = load_registry(Path(__file__).parents[2] / "deploy" / "ceasefires.yaml")
TOPIC = "accepted"


class SlowBuild:
    """A build that runs until released, counting its calls (the real one is seconds at 1M reports)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, ceasefire: Ceasefire, store: StateStore) -> object:
        self.calls += 1
        assert self.release.wait(10)
        return (ceasefire.id, list(store.scan()))


def states(build: SlowBuild) -> CeasefireStates[object]:
    app = faust.App("states-test", broker="memory://", store="memory://")
    return CeasefireStates(app, REGISTRY, "correlation", TOPIC, 4, build)


@pytest.mark.asyncio
async def test_an_agent_waits_for_the_build_in_the_thread_instead_of_building_again() -> None:
    build = SlowBuild()
    table = states(build)
    ceasefire = next(iter(REGISTRY.ceasefires))
    warming = asyncio.ensure_future(table._build_beside(ceasefire, 2, [("~meta", "{}")]))
    await asyncio.sleep(0)  # warm starts the thread
    waiting = asyncio.ensure_future(table.built([(ceasefire.id, 2)]))
    await asyncio.sleep(0)
    assert not waiting.done(), "the agent must wait while the thread builds"
    build.release.set()
    await asyncio.wait_for(waiting, 5)
    await asyncio.wait_for(warming, 5)
    assert table.get(ceasefire.id, 2) == (ceasefire.id, [("~meta", "{}")])
    assert build.calls == 1


@pytest.mark.asyncio
async def test_a_build_that_a_revocation_overtook_is_not_kept() -> None:
    build = SlowBuild()
    table = states(build)
    ceasefire = next(iter(REGISTRY.ceasefires))
    warming = asyncio.ensure_future(table._build_beside(ceasefire, 2, []))
    await asyncio.sleep(0)  # warm starts the thread
    thread_build = table._building[ceasefire.id]
    warming.cancel()  # what a revocation does to warm
    table.forget({TP(TOPIC, 2)})
    assert ceasefire.id not in table._building, "nobody may wait for a build that will not be kept"
    build.release.set()
    await asyncio.wait_for(thread_build, 5)
    assert ceasefire.id not in table.states
    assert warming.cancelled()


@pytest.mark.asyncio
async def test_an_agent_builds_a_missing_state_in_a_thread_once() -> None:
    build = SlowBuild()
    table = states(build)
    ceasefire = next(iter(REGISTRY.ceasefires))
    first = asyncio.ensure_future(table.built([(ceasefire.id, 1)]))

    async def thread_started() -> None:  # the store is read, then the thread starts
        while ceasefire.id not in table._building:
            await asyncio.sleep(0)

    await asyncio.wait_for(thread_started(), 5)
    second = asyncio.ensure_future(table.built([(ceasefire.id, 1)]))  # the next batch, meanwhile
    await asyncio.sleep(0)
    assert not first.done() and not second.done()
    build.release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert table.get(ceasefire.id, 1) == (ceasefire.id, [])
    assert build.calls == 1


def test_a_state_reads_what_was_stored_for_its_ceasefire_and_nothing_else() -> None:
    """The correlator asks its remembered identities of the table (services/correlate/seen.py): the
    reader it is built with sees the entries `store` wrote for that ceasefire, under its own keys."""
    readers = []

    def build(ceasefire: Ceasefire, store: StateStore) -> str:
        readers.append(store.get)
        return ceasefire.id

    app = faust.App("states-test", broker="memory://", store="memory://")
    table: CeasefireStates[str] = CeasefireStates(app, REGISTRY, "correlation", TOPIC, 4, build)
    first, second = REGISTRY.ceasefires[:2]
    table.get(first.id, 3)
    table.get(second.id, 3)
    table.store(first.id, {"s\x1fab": "5"})
    assert readers[0]("s\x1fab") == "5"
    assert readers[0]("s\x1fcd") is None
    assert readers[1]("s\x1fab") is None  # another ceasefire's entry, though in the same partition

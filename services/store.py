"""The one contract every stage's state is stored through: entries by key, and one prefix's entries.

A state class (`DedupState`, `Correlator`, `AlertEngine`) reads its entries through a `StateStore` and
never knows what is underneath: in the service one partition of a changelogged table
(services/runtime/state.py), in tests and benchmarks a `MemoryStore`. Writes go in one batch
(`apply`, None deletes), in the order given: the stage decides when (services/runtime/stage.py).
Pure: no framework.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class StateStore(Protocol):
    def get(self, key: str, default: str | None = None) -> str | None: ...

    def scan(self, prefix: str = "") -> Iterator[tuple[str, str]]: ...

    def apply(self, changes: Mapping[str, str | None]) -> None: ...


class MemoryStore(dict[str, str]):
    """A `StateStore` in a dict (tests, benchmarks): also readable as one."""

    def scan(self, prefix: str = "") -> Iterator[tuple[str, str]]:
        return ((key, value) for key, value in list(self.items()) if key.startswith(prefix))

    def apply(self, changes: Mapping[str, str | None]) -> None:
        for key, value in changes.items():
            if value is None:
                self.pop(key, None)
            else:
                self[key] = value


def stored_entries(store: StateStore | Iterable[tuple[str, str]]) -> tuple[Iterable[tuple[str, str]], StateStore | None]:
    """A state's entries, and the store to ask later (None: entries given as a plain list, as tests
    do, where the state keeps in memory what it would otherwise ask the store again)."""
    if isinstance(store, StateStore):
        return store.scan(""), store
    return store, None

"""The newest version of each record on a versioned topic (incidents by id, alerts by fingerprint)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar


class Versioned(Protocol):
    version: int


V = TypeVar("V", bound=Versioned)


def newest(records: Iterable[V], key: Callable[[V], str]) -> dict[str, V]:
    """What a consumer that keeps the highest version per key ends with."""
    found: dict[str, V] = {}
    for record in records:
        k = key(record)
        if k not in found or record.version > found[k].version:
            found[k] = record
    return found

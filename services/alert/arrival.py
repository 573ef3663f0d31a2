"""Incidents kept in the order their versions arrived, so that those past a hold come first."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Protocol, TypeVar


class Arrived(Protocol):
    @property
    def seen(self) -> int: ...  # the arrival sequence number of the incident's newest version


A = TypeVar("A", bound=Arrived)


def pop_arrived(entries: OrderedDict[str, A], since: int) -> Iterator[A]:
    """Pop, oldest first, the entries whose newest version arrived at or before `since`."""
    while entries:
        first = next(iter(entries.values()))
        if first.seen > since:
            return
        entries.popitem(last=False)
        yield first

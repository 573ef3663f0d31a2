"""The batch protocol every stage follows, in one place: decode → domain → send → store → commit.

A stage's agent takes a batch of input records and
1. **decodes** them (`decode_batch`): a record that does not decode is dead-lettered, the rest go on;
2. **applies** the domain to each item in order (`apply_isolated`): an item the domain raises on is
   that item's fault — dead-lettered, the states the batch touched dropped (nothing of the batch is
   stored yet, so the table still holds its starting state) and the batch applied again without it;
3. **sends** its outputs through an `Outbox`, which queues every send of the batch (outputs and dead
   letters alike) and awaits their acknowledgements together (`flush`);
4. **stores** the state's changes, then awaits the changelog (`tables.changelog_sent`);
5. returns, and Faust may commit the batch's offsets.

A crash anywhere re-processes the batch: outputs may be sent twice, never lost, and the stores are
idempotent. The one stage-specific step is where the state is stored relative to the sends, said in
each agent: correlate stores its incidents' new versions *before* sending (a reservation, so a version
never gets two contents), that they were sent once they are acknowledged, then the rest
(docs/link-rule.md, docs/alerts.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from schemas.topics import TOPICS, Role
from services.runtime.codec import encode, raw_topic, try_decode
from services.runtime.failure import FAULT, UNDECODABLE, or_die, quarantine
from services.runtime.fixes.batching import bounded_batches
from services.runtime.state import Fenced, fenced_reason

if TYPE_CHECKING:
    import faust

    from services.runtime.context import Context

T = TypeVar("T")
R = TypeVar("R")
Headers = Sequence[tuple[str, bytes]]


class AheadOfTime(ValueError):
    """A time on an internal topic ahead of processing time plus the allowed future skew: no stage of
    ours writes one (validation bounds `observed_at`), so the record did not come from the service.
    Obeyed, one such watermark would resolve every firing alert, zero the fragility index and — since a
    watermark never goes back — silence the ceasefire for good; one such report would make dedup judge
    every later report too old. Raised in a stage's apply, it dead-letters the item like any fault."""


def not_ahead(at: datetime, now: datetime, limit: timedelta, what: str) -> datetime:
    """`at`, if it is not more than `limit` ahead of `now` (a difference: no overflow near year 9999)."""
    if at - now > limit:
        raise AheadOfTime(f"{what} {at.isoformat()} is {at - now} ahead of processing time (limit {limit})")
    return at


class Outbox:
    """The sends of one batch, in the order decided, acknowledged together."""

    def __init__(self, app: faust.App, ctx: Context, stage: str) -> None:
        self.app, self.ctx, self.stage = app, ctx, stage
        self.pending: list[Awaitable[Any]] = []
        self.topics = {role: ctx.settings.topic(role) for role in Role}  # once a batch, not once a send

    async def send(
        self, role: Role, key: bytes | None, value: bytes, partition: int | None = None, headers: Headers = ()
    ) -> None:
        fenced = fenced_reason(self.app)
        if fenced is not None:  # this worker lost its partitions without knowing: nothing goes out
            raise Fenced(fenced)
        headers = list(headers) or None
        self.pending.append(await self.app.producer.send(self.topics[role], key, value, partition, None, headers))

    async def publish(
        self,
        role: Role,
        value: BaseModel,
        partition: int | None = None,
        headers: Headers = (),
        encoded: bytes | None = None,
    ) -> None:
        """Send a model on its topic, keyed by the topic's key function (schemas/topics.py); `encoded`:
        the value's bytes when the stage has them already (one encoding for two topics)."""
        spec = TOPICS[role]
        if spec.model is None or not isinstance(value, spec.model):
            raise TypeError(f"topic {role} carries {spec.model and spec.model.__name__}, not {type(value).__name__}")
        key = None if spec.key_of is None else spec.key_of(value).encode()
        await self.send(role, key, encode(value) if encoded is None else encoded, partition, headers)

    async def undecodable(self, message: Any, error: BaseException) -> None:
        self.pending.append(await quarantine(self.app, self.ctx, self.stage, message, UNDECODABLE, error))

    async def fault(self, message: Any, error: BaseException, body: bytes) -> None:
        self.pending.append(await quarantine(self.app, self.ctx, self.stage, message, FAULT, error, body))

    async def flush(self) -> None:
        """Await every send of the batch so far: after this, the broker has them all."""
        pending, self.pending = self.pending, []
        await asyncio.gather(*pending)


async def decode_batch(events: Iterable[faust.EventT], role: Role, outbox: Outbox) -> list[tuple[Any, Any]]:
    """Each record's message and its value, read with the topic's model (schemas/topics.py); a record
    that does not decode is dead-lettered."""
    reader = TOPICS[role].reader
    decoded = []
    for event in events:
        value = try_decode(reader, event.message.value)
        if isinstance(value, ValidationError):
            await outbox.undecodable(event.message, value)
        else:
            decoded.append((event.message, value))
    return decoded


@dataclass(frozen=True, slots=True)
class Item(Generic[T]):
    """One thing the domain applies: from which input record, to which ceasefire's state, what."""

    message: Any
    ceasefire_id: str
    value: T
    body: Callable[[], bytes]  # its bytes, for a dead letter


class States(Protocol):
    """What `apply_isolated` needs of the per-ceasefire states (services/runtime/ceasefire_state.py)."""

    async def built(self, wanted: Iterable[tuple[str, int]]) -> None: ...

    def discard(self, ceasefire_id: str) -> None: ...


async def apply_isolated(
    items: Sequence[Item[T]], apply: Callable[[Item[T]], R], states: States, outbox: Outbox
) -> list[tuple[Item[T], R]]:
    """Apply the items in order, each with its result; an item `apply` raises on is dead-lettered and
    the batch applied again without it, from the states as stored (see the module docstring)."""
    poisoned: set[int] = set()
    while True:
        await states.built((item.ceasefire_id, item.message.partition) for item in items)
        applied: list[tuple[Item[T], R]] = []
        touched: set[str] = set()
        for n, item in enumerate(items):
            if n in poisoned:
                continue
            touched.add(item.ceasefire_id)
            try:
                applied.append((item, apply(item)))
            except Exception as error:  # noqa: BLE001 - one item's fault, not the stage's
                poisoned.add(n)
                for ceasefire_id in touched:
                    states.discard(ceasefire_id)
                await outbox.fault(item.message, error, item.body())
                break
        else:
            return applied


def serve(
    app: faust.App,
    ctx: Context,
    name: str,
    role: Role,
    handle: Callable[[list[faust.EventT]], Awaitable[None]],
    max_records: int | None = None,
) -> faust.TopicT:
    """Register the agent `name` on the topic of `role`: every agent's body. It takes batches bounded
    by count (`max_records`, else `CEASEFIRE_BATCH_RECORDS_MAX`), bytes and time, and hands each to
    `handle` under the error policy (failure.or_die: a fault of the machinery stops the process
    before the batch's offsets commit). Returns the topic (the read API routes by it)."""
    s = ctx.settings
    topic = raw_topic(app, s.topic(role))
    records = s.batch_records_max if max_records is None else max_records

    async def agent(stream: faust.StreamT[bytes]) -> None:
        async for events in bounded_batches(stream, records, s.batch_within_seconds, s.batch_bytes_max):
            await or_die(name, handle(events))

    app.agent(topic, name=name)(agent)
    return topic

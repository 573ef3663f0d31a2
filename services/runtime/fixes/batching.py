"""Batches bounded by count, by bytes and by time, collected while the agent works on the last one.

Faust's `take_events(max, within)` bounds a batch by its count only. Under a backlog the agents that
read internal batch records (up to 512 KB each) then took 64 of them at once: tens of thousands of
reports decoded together, and every incident version correlating them made, held at once (~400 MB
of worker at 500K reports in the 1,000,000-report soak). Here a batch is also handed over once its
record values reach `max_bytes`. The next batch collects while the body works on the previous one.

Tried and not kept: handing a batch over as soon as the stream's queue runs empty (no window). At a
paced 500 reports/s it made 3–5× more internal records and awaited sends per second, and latency
doubled (p50 send → incident 110 → 190–300 ms): every stage awaits its sends on one producer
connection with one request in flight, so fewer, larger batches win.

Acknowledgements are Faust's: the stream's own acks are off while this runs, and a batch's events are
acknowledged once the agent body is done with them (so its offsets commit only then), never when the
body was cut off.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import faust
from faust.types import EventT


async def bounded_batches(
    stream: faust.StreamT, max_: int, within: float, max_bytes: int
) -> AsyncIterator[list[EventT]]:
    """Batches of at most `max_` events, handed over when that many are in, when they hold `max_bytes`
    of record values or more, or when `within` seconds have passed with some in: since the wait began
    (as Faust's take), or since the first of them came in while the body worked on the last batch."""
    collecting: list[list[EventT]] = [[]]  # the batch being collected; swapped out when handed over
    size = [0]  # bytes of record values in the batch being collected
    ready = asyncio.Event()  # a full batch (count or bytes) waits
    room = asyncio.Event()  # cleared while a full batch waits to be handed over
    room.set()
    first_at = [0.0]  # loop time of that first event: the window runs from it
    loop = asyncio.get_running_loop()

    async def collect(value: object) -> object:
        await room.wait()
        event = stream.current_event
        if event is None:
            raise RuntimeError("bounded_batches: a value with no current event")
        batch = collecting[0]
        if not batch:
            first_at[0] = loop.time()
        batch.append(event)
        size[0] += len(event.message.value or b"")
        if len(batch) >= max_ or size[0] >= max_bytes:
            room.clear()
            ready.set()
        return value

    acks_were = stream.enable_acks
    stream.enable_acks = False  # acked below, after the body
    stream.add_processor(collect)
    stream._enable_passive(aiter(stream.channel))  # type: ignore[attr-defined]  # noqa: SLF001 - as Faust's take does
    try:
        while not stream.should_stop:
            # The window runs from the loop's start, or from the first event of a batch that began
            # collecting while the body worked: such events wait one window at most, not two.
            timeout = within if not collecting[0] else first_at[0] + within - loop.time()
            if timeout > 0 and not ready.is_set():
                await stream.wait_for_stopped(ready, timeout=timeout)  # type: ignore[attr-defined, arg-type]
            if not collecting[0]:
                continue
            batch = collecting[0]
            collecting[0] = []
            size[0] = 0
            ready.clear()
            room.set()
            yield batch
            # Acked only when the body asks for the next batch, i.e. finished this one. A body cut off
            # (a stop cancels it; the generator is then closed at the yield) acks nothing, so nothing
            # it did not finish is committed (Faust's take acks in a `finally`, also on the way out).
            for event in batch:
                await stream.ack(event)
    finally:
        stream.enable_acks = acks_were
        stream._processors.remove(collect)  # type: ignore[attr-defined]  # noqa: SLF001

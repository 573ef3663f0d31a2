"""Publishing reports to the ingest topic (the `post` command and the demo feeder)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.ingest import Origin
from services.ingest.signature import sign, signature_headers
from services.runtime.broker import BrokerError, quiet_client_logs
from services.runtime.kafka_security import client_options
from services.runtime.settings import Settings


def report_key(line: bytes) -> bytes | None:
    """Key by `source` when the line is a report we can read; garbage goes unkeyed, as it came."""
    try:
        source = orjson.loads(line).get("source")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return source.encode() if isinstance(source, str) else None


async def post_lines(
    settings: Settings, lines: Sequence[bytes], pace_seconds: float = 0.0, key: tuple[str, str] | None = None
) -> int:
    """Send each line as one record; `pace_seconds` spreads them out (for a live demo); `key` signs each."""
    return len(await send_lines(settings, lines, pace_seconds, key))


async def send_lines(
    settings: Settings, lines: Sequence[bytes], pace_seconds: float = 0.0, key: tuple[str, str] | None = None
) -> list[Origin]:
    """`post_lines`, returning where each record landed on the ingest topic: what ingest's rulings name
    it by (`post --wait`)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, linger_ms=5, max_request_size=4 * 1024 * 1024,
        acks="all",  # a report counts as sent once min.insync.replicas copies hold it (production: 2 of 3)
        **client_options(settings),
    )
    try:
        with quiet_client_logs():
            await asyncio.wait_for(producer.start(), 15)
    except (KafkaError, OSError, TimeoutError) as exc:
        await producer.stop()
        raise BrokerError(f"cannot reach the Kafka broker at {settings.bootstrap}: {exc!r}") from None
    try:
        delay = pace_seconds / max(1, len(lines))
        pending = []
        for line in lines:
            headers = None if key is None else signature_headers(key[0], sign(line, key[1]))
            pending.append(await producer.send(settings.topic_reports, line, key=report_key(line), headers=headers))
            if delay:
                await asyncio.sleep(delay)
        landed = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return [Origin(partition=sent.partition, offset=sent.offset) for sent in landed]

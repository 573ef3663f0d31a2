"""Topic creation at start-up (never broker auto-creation) and broker reachability checks."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.topics import TOPICS, Role
from services.runtime.broker import BrokerError, quiet_client_logs
from services.runtime.settings import Settings

# Topics whose partition is chosen by us (hash of source; the accepted partition of a ceasefire).
CO_PARTITIONED = frozenset({Role.BY_SOURCE, Role.ACCEPTED, Role.ACCEPTED_BATCHES, Role.BY_CEASEFIRE})


async def ensure_topics(settings: Settings, roles: list[Role] | None = None, timeout: float = 15.0) -> str:
    """Create every topic the service uses (idempotent). Compacted topics get `cleanup.policy=compact`.
    Returns the broker's cluster id, which local table state is tied to (runner.prepare_local_state)."""
    wanted = [TOPICS[r] for r in (roles or list(Role))]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        with quiet_client_logs():
            await asyncio.wait_for(admin.start(), timeout)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerError(f"cannot reach the Kafka broker at {settings.bootstrap}: {exc!r}") from None
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=settings.topic(spec.role),
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"cleanup.policy": "compact"} if spec.compacted else {},
            )
            for spec in wanted
            if settings.topic(spec.role) not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race: fine
                await admin.create_topics(new)
        await _check_partitions(admin, settings, [spec.role for spec in wanted if spec.role in CO_PARTITIONED])
        return str((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()


async def _check_partitions(admin: AIOKafkaAdminClient, settings: Settings, roles: list[Role]) -> None:
    """Stages choose partitions by hash modulo CEASEFIRE_PARTITIONS and expect co-partitioned topics:
    a topic created elsewhere with another count would send records where no one looks."""
    names = [settings.topic(role) for role in roles]
    for description in await admin.describe_topics(names):
        count = len(description.get("partitions", []))
        if description.get("error_code", 0) == 0 and count != settings.partitions:
            raise BrokerError(
                f"topic {description['topic']} has {count} partitions but CEASEFIRE_PARTITIONS is "
                f"{settings.partitions}: delete it or set CEASEFIRE_PARTITIONS={count}"
            )

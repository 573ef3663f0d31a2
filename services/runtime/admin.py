"""Topic creation at start-up (never broker auto-creation) and broker reachability checks."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.topics import TOPICS, Role
from services.runtime.broker import BrokerError, quiet_client_logs
from services.runtime.kafka_security import client_options
from services.runtime.settings import Settings

# Topics whose partition is chosen by us (hash of source; the accepted partition of a ceasefire).
log = logging.getLogger("ceasefire.admin")
CO_PARTITIONED = frozenset({Role.BY_SOURCE, Role.ACCEPTED, Role.ACCEPTED_BATCHES, Role.BY_CEASEFIRE})


async def ensure_topics(
    settings: Settings, roles: list[Role] | None = None, timeout: float = 15.0, wait: float = 0.0
) -> str:
    """Create every topic the service uses (idempotent). Compacted topics get `cleanup.policy=compact`.
    Returns the broker's cluster id, which local table state is tied to (runner.prepare_local_state).
    A broker that does not answer is waited for up to `wait` seconds (a worker started before it)."""
    wanted = [TOPICS[r] for r in (roles or list(Role))]
    admin = await _connect(settings, timeout, wait)
    try:
        existing = set(await admin.list_topics())  # with ACLs: only the topics this principal may describe
        if not settings.create_topics:
            _refuse_missing(existing, [settings.topic(spec.role) for spec in wanted])
        new = [
            NewTopic(
                name=settings.topic(spec.role),
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"cleanup.policy": "compact"} if spec.compacted else {},
            )
            for spec in wanted
            if settings.topic(spec.role) not in existing  # none, past _refuse_missing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race: fine
                await admin.create_topics(new)
        await _check_partitions(admin, settings, [spec.role for spec in wanted if spec.role in CO_PARTITIONED])
        return str((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()


async def _connect(settings: Settings, timeout: float, wait: float) -> AIOKafkaAdminClient:
    """A started admin client; the broker is tried again every second for up to `wait` seconds, said
    once in the log, and a broker still away after that is a BrokerError (one line for a person)."""
    loop = asyncio.get_running_loop()
    deadline, said = loop.time() + wait, False
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.bootstrap, request_timeout_ms=int(timeout * 1000), **client_options(settings)
        )
        try:
            with quiet_client_logs():
                await asyncio.wait_for(admin.start(), timeout)
            return admin
        except (KafkaError, OSError, TimeoutError) as exc:
            await admin.close()
            if loop.time() >= deadline:
                waited = f" after waiting {wait:g} s" if wait else ""
                raise BrokerError(f"cannot reach the Kafka broker at {settings.bootstrap}{waited}: {exc!r}") from None
            if not said:
                log.warning("waiting up to %g s for the Kafka broker at %s", wait, settings.bootstrap)
                said = True
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))


def _refuse_missing(visible: set[str], names: list[str]) -> None:
    """Where the topic init and the ACLs own the topics (CEASEFIRE_CREATE_TOPICS=false), a missing or
    forbidden topic stops the start with its name, instead of a Faust agent that never gets a record."""
    missing = sorted(set(names) - visible)  # (describing them would create them on the embedded broker)
    if missing:
        raise BrokerError(
            f"topics this worker needs are missing or not allowed to it: {', '.join(missing)}; CEASEFIRE_CREATE_TOPICS"
            " is off: create them and grant this worker's principal (deploy/kafka/init.sh, docs/security.md)"
        )


async def _check_partitions(admin: AIOKafkaAdminClient, settings: Settings, roles: list[Role]) -> None:
    """Stages choose partitions by hash modulo CEASEFIRE_PARTITIONS and expect co-partitioned topics:
    a topic created elsewhere with another count would send records where no one looks."""
    names = [settings.topic(role) for role in roles]
    if not names:  # describing no topics describes every topic (Kafka's protocol): nothing to check
        return
    for description in await admin.describe_topics(names):
        count = len(description.get("partitions", []))
        if description.get("error_code", 0) == 0 and count != settings.partitions:
            raise BrokerError(
                f"topic {description['topic']} has {count} partitions but CEASEFIRE_PARTITIONS is "
                f"{settings.partitions}: delete it or set CEASEFIRE_PARTITIONS={count}"
            )

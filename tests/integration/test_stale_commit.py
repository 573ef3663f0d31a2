"""A worker out of its consumer group cannot commit (issue 21, the network partition).

A worker found fenced (services/runtime/fixes/tables.py) drops the batch but lets Faust acknowledge
it: nothing of it went out, and its offsets must never be committed, or its input would be lost. That
rests on the broker refusing an OffsetCommit from a member that left the group, under its old
generation, once another member's generation has begun. Shown here on the embedded broker, with the
request a zombie's consumer would send (aiokafka's coordinator keeps its old member id and generation
until a heartbeat tells it otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.commit import OffsetCommitRequest

from tests.support.kafka import eventually

pytestmark = pytest.mark.asyncio

ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID = 22, 25


async def test_a_member_that_left_cannot_commit_under_its_old_generation(broker, tmp_path: Path) -> None:
    topic, group = f"stale-{tmp_path.name}", f"stale-group-{tmp_path.name}"
    bootstrap = broker.bootstrap
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"x", partition=0)
        await producer.send_and_wait(topic, b"y", partition=0)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    quick = {"heartbeat_interval_ms": 200, "session_timeout_ms": 6000, "rebalance_timeout_ms": 3000}
    a = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **quick,
                         auto_offset_reset="earliest")
    b = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **quick,
                         auto_offset_reset="earliest")
    await a.start()
    try:
        await eventually(lambda: _assigned(a, tp), timeout=30, what="A given the partition")
        await a.commit({tp: 1})
        old_generation, old_member = a._coordinator.generation, a._coordinator.member_id  # noqa: SLF001 - what a zombie holds
        node = a._coordinator.coordinator_id  # noqa: SLF001
        await b.start()
        await a.stop()  # A leaves (as a member whose session expired is removed); B's generation begins
        await eventually(lambda: _assigned(b, tp), timeout=30, what="B given the partition")
        assert b._coordinator.generation > old_generation  # noqa: SLF001
        client = AIOKafkaClient(bootstrap_servers=bootstrap)  # the request A's coordinator would send
        await client.bootstrap()
        try:
            request = OffsetCommitRequest(  # as aiokafka's coordinator builds it (_do_commit_offsets)
                group, old_generation, old_member, OffsetCommitRequest.DEFAULT_RETENTION_TIME, [(topic, [(0, 2, "")])]
            )
            response = await client.send(node, request)
        finally:
            await client.close()
        ((_, ((_, error),)),) = response.topics
        assert error in (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID), f"a stale member's commit answered {error}"
        assert await b.committed(tp) == 1, "the stale commit moved the group's offset"
    finally:
        await a.stop()
        await b.stop()


async def _assigned(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
    await consumer.getmany(timeout_ms=200)
    return tp in consumer.assignment()

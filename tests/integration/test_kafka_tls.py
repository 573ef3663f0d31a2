"""Every Kafka client of the service over TLS (docs/security.md): a whole pipeline worker (the Faust
app, its admin and restore clients, the broker watch, the archive's consumer, the HTTP ingest's
producer) and the CLI, on an embedded broker reachable only through TLS; clients that do not trust
its CA, or speak plain Kafka, get nowhere and are told so. As in production, the worker may not
create topics: they come from the topic plan (deploy/kafka/topics.txt), and the run shows the plan
misses none; a worker whose topics are missing stops at once."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.topics import Role
from services.ingest.signature import sign
from services.runtime import topic_plan
from services.runtime.broker import free_port
from services.runtime.kafka_security import client_options
from services.runtime.settings import Settings
from tests.support.kafka import eventually, listening, read_topic
from tests.support.reports import at, encode, report
from tests.support.tls import TlsBroker, tls_broker
from tests.support.worker import WorkerProcess, isolated_settings, settings_env

SECRET = "tls-test-key-of-the-indian-army"  # noqa: S105 - a test key


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    with tls_broker(tmp_path_factory.mktemp("tls")) as running:
        yield running


def post_file(settings: Settings, path: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "services.console.cli", "post", str(path), *extra],
        env=settings_env(settings), capture_output=True, timeout=60, check=False,
    )


async def test_a_pipeline_worker_and_the_cli_work_over_tls_only(tls: TlsBroker, workers, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "in.army-2025").write_text(SECRET)
    http_port = free_port()
    settings = isolated_settings(
        tls.url, tmp_path / "state", kafka_security_protocol="SSL", kafka_ca_file=tls.ca_file,
        source_keys_path=keys, http_ingest_port=http_port, create_topics=False,
    )
    planned = await create_planned_topics(settings)
    worker = WorkerProcess(settings, ("ingest", "correlate", "alert", "archive"), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving(timeout=60)

    reports = tmp_path / "reports.jsonl"
    reports.write_bytes(b"".join(encode(report(report_id=f"tls-{n}", observed_at=at(n))) + b"\n" for n in (1, 2)))
    posted = post_file(settings, reports, "--sign", str(keys / "in.army-2025"), "--wait")  # with the receipts' reader
    assert posted.returncode == 0, posted.stderr.decode()


    await eventually(listening(http_port), timeout=30, what="POST /reports listening")
    body = encode(report(report_id="tls-3", observed_at=at(3)))
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"http://127.0.0.1:{http_port}/reports", data=body, method="POST",
        headers={"Content-Type": "application/json", "ceasefire-key-id": "in.army-2025", "ceasefire-signature": sign(body, SECRET)},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 202

    over_tls = client_options(settings)
    accepted = await read_topic(settings.bootstrap, settings.topic(Role.ACCEPTED), 3, **over_tls)
    assert sorted(json.loads(r.value)["report_id"] for r in accepted) == ["tls-1", "tls-2", "tls-3"]
    assert await read_topic(settings.bootstrap, settings.topic(Role.INCIDENTS), 1, **over_tls)

    async def archived() -> bool:  # the archive's own consumer, over TLS, into the read API
        url = f"http://127.0.0.1:{settings.web_port}/reports/in.army/tls-3"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310
                return bool(answer.status == 200)
        except OSError:
            return False

    await eventually(archived, timeout=60, what="tls-3 in the archive")
    assert await topics_of(settings) <= planned, "the worker used a topic the plan (and the topic init) lacks"


def test_a_worker_whose_topics_are_missing_stops_at_once(tls: TlsBroker, tmp_path: Path) -> None:
    settings = isolated_settings(
        tls.url, tmp_path / "state", kafka_security_protocol="SSL", kafka_ca_file=tls.ca_file, create_topics=False,
    )
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "services.console.cli", "worker", "correlate"],
        env=settings_env(settings), capture_output=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr


async def create_planned_topics(settings: Settings) -> set[str]:
    """What deploy/kafka/init.sh does with kafka-topics.sh, for this test's topic names."""
    planned = topic_plan.topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, **client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(t.name, t.partitions or settings.partitions, 1, topic_configs={"cleanup.policy": t.cleanup}) for t in planned
        ])
    finally:
        await admin.close()
    return {t.name for t in planned}


async def topics_of(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, **client_options(settings))
    await admin.start()
    try:
        return {name for name in await admin.list_topics() if name.startswith(settings.app_id)}
    finally:
        await admin.close()


@pytest.mark.parametrize("how", ["plain Kafka", "TLS without the CA"])
def test_clients_that_do_not_trust_the_broker_or_speak_plain_kafka_fail(tls: TlsBroker, tmp_path: Path, how: str) -> None:
    security = {"kafka_security_protocol": "SSL"} if how == "TLS without the CA" else {}
    settings = isolated_settings(tls.url, tmp_path / "state", **security)
    reports = tmp_path / "reports.jsonl"
    reports.write_bytes(encode(report(report_id="never")) + b"\n")
    posted = post_file(settings, reports)
    assert posted.returncode != 0
    assert b"Traceback" not in posted.stderr

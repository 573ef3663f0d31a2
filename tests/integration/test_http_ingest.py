"""POST /reports on a real worker: signed bodies are forwarded as sent and ingested; unsigned, wrongly
signed, oversized and over-rate requests are refused with 401/413/429 and a reason."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from schemas.topics import Role
from services.ingest.signature import sign
from services.runtime.broker import free_port
from tests.support.kafka import eventually, listening, read_topic
from tests.support.reports import encode, report
from tests.support.worker import WorkerProcess, isolated_settings

ARMY = "http-key-of-the-indian-army-01"  # noqa: S105 - test keys
ISPR = "http-key-of-pakistans-ispr-02"  # noqa: S105


def post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/reports", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def signed(body: bytes, key_id: str, secret: str, kind: str = "application/json") -> dict[str, str]:
    return {"Content-Type": kind, "ceasefire-key-id": key_id, "ceasefire-signature": sign(body, secret)}


async def test_http_ingest_takes_signed_reports_and_refuses_the_rest(broker, workers, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "in.army-2025").write_text(ARMY)
    (keys / "pk.ispr-2025").write_text(ISPR)
    port = free_port()
    settings = isolated_settings(
        broker.url, tmp_path / "state", source_keys_path=keys, http_ingest_port=port,
        http_ingest_max_bytes=8192, http_ingest_burst=5, http_ingest_rate_per_minute=0,
    )
    worker = WorkerProcess(settings, ("ingest",), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving()


    await eventually(listening(port), timeout=30, what="POST /reports listening")
    one = encode(report(report_id="h-1"))
    status, body, _ = post(port, one, signed(one, "in.army-2025", ARMY))
    assert (status, body["receipts"]) == (202, ["/reports/in.army/h-1"])
    lines = b"".join(  # other times: not resubmissions of h-1
        encode(report(report_id=f"h-{n}", observed_at=f"2025-05-10T1{n + 6}:40:00+05:30")) + b"\n" for n in (2, 3)
    )
    status, body, _ = post(port, lines, signed(lines, "in.army-2025", ARMY, "application/x-ndjson"))
    assert (status, body["records"]) == (202, 2)
    # signed by the army's key, but claiming to be ISPR: forwarded, and dead-lettered by ingest
    posing = encode(report(report_id="h-4", source="pk.ispr", source_party="PK", accused_party="IN"))
    assert post(port, posing, signed(posing, "in.army-2025", ARMY))[0] == 202  # 4 records of the burst of 5

    refusals = {
        "unsigned": post(port, one, {"Content-Type": "application/json"}),
        "wrong": post(port, one, signed(one, "in.army-2025", "not-the-armys-key-at-all")),
        "another source's key id": post(port, one, {**signed(one, "in.army-2025", ARMY), "ceasefire-key-id": "pk.ispr-2025"}),
        "unknown key": post(port, one, signed(one, "nobody-2025", ARMY)),
    }
    for what, (status, body, headers) in refusals.items():
        assert status == 401 and body["error"], what
        assert "WWW-Authenticate" in headers, what
    big = b'{"x":"' + b"a" * 9000 + b'"}'
    assert post(port, big, signed(big, "in.army-2025", ARMY))[0] == 413
    text = b"report"
    assert post(port, text, signed(text, "in.army-2025", ARMY, "text/plain"))[0] == 415
    # 5 records a burst, none refilled: 4 went, the 6th record (of 2) is over
    status, body, headers = post(port, lines, signed(lines, "in.army-2025", ARMY, "application/x-ndjson"))
    assert status == 429 and int(headers["Retry-After"]) > 0
    status, _, _ = post(port, encode(report(report_id="p-1", source="pk.ispr", source_party="PK", accused_party="IN")),
                        {})  # another source's bucket is its own; unsigned still 401
    assert status == 401

    async def counted() -> bool:
        return worker.sum_metric("ceasefire_reports_total") >= 4

    await eventually(counted, what="the four forwarded records ruled on")
    accepted = {orjson.loads(r.value)["report_id"] for r in await read_topic(settings.bootstrap, settings.topic(Role.ACCEPTED), 3)}
    assert accepted == {"h-1", "h-2", "h-3"}
    dead = await read_topic(settings.bootstrap, settings.topic(Role.DEAD_LETTERS), 1)
    assert [(orjson.loads(r.value)["report_id"], r.headers["ceasefire.reason"]) for r in dead] == [("h-4", b"signature")]
    assert ARMY not in (tmp_path / "worker.log").read_text(errors="replace")
    answered = {s: worker.sum_metric("ceasefire_http_ingest_requests_total", status=s) for s in ("202", "401", "413", "415", "429")}
    assert answered == {"202": 3, "401": 5, "413": 1, "415": 1, "429": 1}

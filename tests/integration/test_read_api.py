"""The read API on a real worker running the archive: every parameter's bad input is a 400 naming it,
unknown ids are 404s, Faust's own views are gone, and schemathesis, generating requests from the
OpenAPI document (services/archive/openapi.yaml), finds no 500 and no answer that breaks the document."""

from __future__ import annotations

import asyncio
import json
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from schemas.topics import Role
from services.archive.api import OPENAPI
from services.runtime.broker import EmbeddedBroker
from tests.support.kafka import eventually, produce
from tests.support.reports import at, encode, report
from tests.support.worker import WorkerProcess, isolated_settings

CEASEFIRE = "in-pk-2025-05-10"


@pytest.fixture(scope="module")
def api(broker: EmbeddedBroker) -> Iterator[str]:
    """A worker with the archive, fed a mutual incident, a dead letter and a duplicate."""
    state = Path(tempfile.mkdtemp(prefix="read-api-"))
    s = isolated_settings(broker.url, state / "state", partitions=2)
    worker = WorkerProcess(s, ("ingest", "correlate", "alert", "archive"), state / "worker.log").start()
    base = f"http://{s.web_host}:{s.web_port}"
    try:
        docs = [
            report(report_id="a-1", observed_at=at(0)),
            report(report_id="a-2", source="pk.ispr", source_party="PK", accused_party="IN", observed_at=at(3)),
            report(report_id="a-3", observed_at=at(400)),  # moves event time on: the first incident settles
        ]
        asyncio.run(_feed(s, docs))
        asyncio.run(eventually(lambda: _has_incidents(base), timeout=90, what="incidents in the archive"))
        yield base
    finally:
        worker.kill()


async def _feed(s: Any, docs: list[dict[str, Any]]) -> None:
    records = [(b"k", encode(d)) for d in docs] + [(b"k", encode(docs[0])), (b"k", b"{not json")]
    await produce(s.bootstrap, s.topic(Role.REPORTS), records)


async def _has_incidents(base: str) -> bool:
    try:
        status, body = get(base, f"/incidents?ceasefire={CEASEFIRE}")
    except OSError:
        return False
    return status == 200 and len(body["incidents"]) > 0


def get(base: str, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, body.decode(errors="replace")


BAD = [
    ("/incidents?ceasefire=nowhere", "ceasefire"),
    ("/incidents?ceasefire=bad%20id", "ceasefire"),
    ("/incidents?since=yesterday", "since"),
    ("/incidents?since=2025-05-10T00:00:00", "since"),  # no offset
    ("/incidents?until=2025-05-10T00:00:00Z&since=2025-05-11T00:00:00Z", "until"),
    ("/incidents?status=bogus", "status"),
    ("/incidents?min_severity=7", "min_severity"),
    ("/incidents?limit=0", "limit"),
    ("/incidents?limit=100000", "limit"),
    ("/incidents?limit=ten", "limit"),
    ("/incidents?cursor=zzz", "cursor"),
    ("/incidents?sector=" + "x" * 65, "sector"),
    ("/incidents?colour=red", "colour"),
    ("/incidents?limit=1&limit=2", "limit"),
    ("/incidents/inc-1?version=0", "version"),
    ("/incidents/bad%20id", "incident_id"),
    ("/reports/bad%20source/r-1", "source"),
    ("/reports/in.army/bad%20id", "report_id"),
    ("/alerts?firing=maybe", "firing"),
    ("/alerts?ceasefire=nowhere", "ceasefire"),
    ("/fragility", "ceasefire"),
    ("/fragility?ceasefire=in-pk-2025-05-10&kind=daily", "kind"),
]


@pytest.mark.parametrize(("path", "parameter"), BAD)
def test_each_bad_parameter_is_a_400_naming_it(api: str, path: str, parameter: str) -> None:
    status, body = get(api, path)
    assert status == 400 and body["parameter"] == parameter and body["error"]


def test_the_routes_answer_from_the_archive(api: str) -> None:
    status, body = get(api, f"/incidents?ceasefire={CEASEFIRE}&status=mutual")
    assert status == 200 and len(body["incidents"]) == 1
    mutual = body["incidents"][0]
    assert get(api, f"/incidents/{mutual['incident_id']}?version=1")[1]["version"] == 1
    assert get(api, "/incidents/inc-none")[0] == 404
    assert get(api, "/incidents/inc-none?version=3")[0] == 404
    status, kept = get(api, "/reports/IN.ARMY/a-1")  # any case of a registered source
    assert status == 200 and kept["outcome"] == "accepted" and kept["repeats"] == 1
    assert kept["incident"]["incident_id"] == mutual["incident_id"]
    assert get(api, "/reports/in.army/never")[0] == 404
    # an unencoded + in an offset reads as the + it was meant to be
    assert get(api, f"/incidents?ceasefire={CEASEFIRE}&since=2025-05-10T17:00:00+05:30")[0] == 200
    assert get(api, "/alerts?firing=true")[0] == 200
    assert get(api, f"/fragility?ceasefire={CEASEFIRE}")[0] == 200


@pytest.mark.parametrize("path", ["/table/", "/router/", f"/router/{CEASEFIRE}/", "/graph/", "/stats/"])
def test_fausts_own_views_are_not_served(api: str, path: str) -> None:
    assert get(api, path)[0] == 404


def test_no_generated_request_breaks_the_api(api: str) -> None:
    """Every operation of the OpenAPI document, requests generated from it (valid and not): no 500,
    and every answer as the document says. (Schemathesis's pytest plugin does not load under pytest 9:
    the operations are driven with hypothesis directly.)"""
    schema = schemathesis.openapi.from_path(OPENAPI)
    schema.config.update(base_url=api)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: Any) -> None:
            case.call_and_validate(checks=[
                checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
                checks.response_schema_conformance,
            ])

        exercise()

"""The source registry and signatures on a real worker: forged, mismatched, case-varied and signed reports."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import yaml

from schemas.report import AcceptedReport
from schemas.topics import Role
from services.console.post import post_lines
from services.runtime.settings import PROJECT_ROOT
from tests.support.kafka import eventually, read_topic
from tests.support.reports import encode, report
from tests.support.worker import WorkerProcess, isolated_settings, settings_env

SECRET = "field-key-of-the-indian-army-0001"  # noqa: S105 - a test key


def signing_registry(tmp_path: Path) -> tuple[Path, Path]:
    """The shipped registry with in.army required to sign, and a keys directory holding its key."""
    doc = yaml.safe_load((PROJECT_ROOT / "deploy" / "sources.yaml").read_text())
    for source in doc["sources"]:
        if source["id"] == "in.army":
            source["signing"] = "required"
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(doc))
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "in.army-2025").write_text(SECRET + "\n")
    return path, keys


async def test_only_trusted_reports_are_accepted(broker, workers, tmp_path: Path) -> None:
    sources_path, keys = signing_registry(tmp_path)
    settings = isolated_settings(broker.url, tmp_path / "state", sources_path=sources_path, source_keys_path=keys)
    worker = WorkerProcess(settings, ("ingest",), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving()

    signed = encode(report(report_id="signed"))
    await post_lines(settings, [signed], key=("in.army-2025", SECRET))
    await post_lines(settings, [encode(report(report_id="forged-key"))], key=("pk.ispr-2025", SECRET))
    await post_lines(settings, [encode(report(report_id="wrong-secret"))], key=("in.army-2025", "a-guess-at-the-secret"))
    await post_lines(
        settings,
        [
            encode(report(report_id="unsigned")),
            encode(report(report_id="observer", source="un.observers", source_party="NEUTRAL", accused_party=...)),
            encode(report(report_id="turncoat", source="pk.ispr", source_party="IN", accused_party="PK")),
            encode(report(report_id="case", source="PK.ISPR", source_party="PK", accused_party="IN")),
            encode(report(report_id="case", source="pk.ispr", source_party="PK", accused_party="IN")),
        ],
    )
    # and through the command line, as a field office would
    lines = tmp_path / "reports.jsonl"
    lines.write_bytes(encode(report(report_id="from-cli", observed_at="2025-05-10T18:40:00+05:30")) + b"\n")
    posted = subprocess.run(
        [sys.executable, "-m", "services.console.cli", "post", str(lines), "--sign", str(keys / "in.army-2025")],
        env=settings_env(settings), capture_output=True, timeout=60, check=True,
    )
    assert b"sent 1 report to" in posted.stdout

    async def all_counted() -> bool:
        return worker.sum_metric("ceasefire_reports_total") >= 9

    await eventually(all_counted, what="all nine records counted")
    accepted = await read_topic(settings.bootstrap, settings.topic(Role.ACCEPTED), 3)
    dead = await read_topic(settings.bootstrap, settings.topic(Role.DEAD_LETTERS), 5)
    duplicates = await read_topic(settings.bootstrap, settings.topic(Role.DUPLICATES), 1)

    taken = {(r.source, r.report_id) for r in (AcceptedReport.model_validate_json(m.value) for m in accepted)}
    assert taken == {("in.army", "signed"), ("pk.ispr", "case"), ("in.army", "from-cli")}
    reasons = {orjson.loads(m.value)["report_id"]: m.headers["ceasefire.reason"].decode() for m in dead}
    assert reasons == {
        "forged-key": "signature",
        "wrong-secret": "signature",
        "unsigned": "signature",
        "observer": "unknown_source",
        "turncoat": "party_mismatch",
    }
    assert Counter((orjson.loads(m.value)["source"], orjson.loads(m.value)["report_id"]) for m in duplicates) == {
        ("pk.ispr", "case"): 1
    }
    assert SECRET not in (tmp_path / "worker.log").read_text(errors="replace")
    assert not [labels for (_, labels) in worker.scrape() if any(SECRET in value for _, value in labels)]

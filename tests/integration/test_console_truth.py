"""The console tells the truth (issue 20): `post --wait` says what became of each record it sent, and
`dead-letters` shows every rejected record, on the embedded broker with a real ingest worker."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from services.console.deadletters import REASON_WORDS
from tests.support.reports import encode, report
from tests.support.worker import WorkerProcess, isolated_settings, settings_env

GARBAGE = b"this is not a report {"


def ceasefire(settings, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:  # noqa: ANN001
    return subprocess.run(
        [sys.executable, "-m", "services.console.cli", *args],
        input=stdin, env=settings_env(settings), capture_output=True, timeout=120, check=False,
    )


async def test_post_wait_gives_each_record_its_verdict_and_dead_letters_shows_the_garbage(broker, workers, tmp_path: Path) -> None:
    settings = isolated_settings(broker.url, tmp_path / "state", partitions=2)
    worker = WorkerProcess(settings, ("ingest",), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving()
    valid = encode(report(report_id="told-1"))
    posted = tmp_path / "reports.jsonl"
    posted.write_bytes(b"\n".join([valid, b"", valid, GARBAGE]) + b"\n")  # the blank line is skipped, not sent

    waited = ceasefire(settings, "post", str(posted), "--wait", "--timeout", "90")
    out = waited.stdout.decode()
    assert waited.returncode == 1, (out, waited.stderr.decode())
    lines = out.splitlines()
    assert lines[0].startswith("sent 3 reports to ")
    assert lines[1].startswith("line 1  in.army/told-1  accepted (revision 1)")
    assert lines[2].startswith("line 3  in.army/told-1  duplicate of in.army/told-1 (exact: ")
    assert lines[3].startswith(f"line 4  (names no report)  dead-lettered: {REASON_WORDS['not_json']}")
    assert lines[4].strip().startswith("$: not JSON")
    assert lines[-1] == "3 records: 1 accepted, 1 duplicate, 1 dead-lettered"

    shown = ceasefire(settings, "dead-letters")
    assert shown.returncode == 0, shown.stderr.decode()
    text = shown.stdout.decode()
    assert f"not_json: {REASON_WORDS['not_json']} · names no report" in text
    assert GARBAGE.decode() in text and text.splitlines()[-1] == "1 dead letter"

    as_json = ceasefire(settings, "dead-letters", "--json", "--reason", "not_json")
    records = [json.loads(line) for line in as_json.stdout.decode().splitlines()]
    assert [base64.b64decode(r["value_base64"]) for r in records] == [GARBAGE]
    assert records[0]["origin"]["topic"] == settings.topic_reports and records[0]["source"] is None

    none = ceasefire(settings, "dead-letters", "--reason", "schema")
    assert none.stdout.decode().splitlines() == ["0 dead letters"]
    unknown = ceasefire(settings, "dead-letters", "--reason", "no_such_reason")
    assert unknown.returncode == 2 and "not_json" in unknown.stderr.decode()

"""A broker that cannot be reached gives one clear line and exit code 2, not a traceback.

`ceasefire incidents` without --follow reads the archive, not the broker
(tests/integration/test_incidents_cli.py covers a missing archive).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.runtime.broker import free_port


@pytest.mark.parametrize(
    "args",
    [["worker", "ingest", "--web-port", "0"], ["post", "-"], ["alerts"], ["incidents", "--follow"]],
)
def test_unreachable_broker_is_one_line(args: list[str], tmp_path) -> None:  # noqa: ANN001
    nobody = f"kafka://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "services.console.cli", *args, "--broker", nobody],
        input=b"{}\n",
        capture_output=True,
        timeout=60,
        check=False,
        env={"CEASEFIRE_DATA_DIR": str(tmp_path), "CEASEFIRE_BROKER_WAIT_SECONDS": "0", "PATH": "/usr/bin:/bin"},
    )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("ceasefire: cannot reach the Kafka broker"), lines

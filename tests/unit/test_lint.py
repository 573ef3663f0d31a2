"""The house lint rules (pyproject's ruff selection) hold for the whole tree."""

from __future__ import annotations

import subprocess
import sys

from services.runtime.settings import PROJECT_ROOT


def test_ruff_finds_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", "schemas", "services", "tests", "deploy", "bench"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

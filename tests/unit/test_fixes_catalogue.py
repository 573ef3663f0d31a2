"""Every workaround of a dependency is catalogued (services/runtime/fixes/__init__.py), exists where it
says, has its row in docs/broker.md, and names a test that exists (or says why none can)."""

from __future__ import annotations

import importlib
import re

import pytest

from services.runtime.fixes import FIXES, Fix
from services.runtime.settings import PROJECT_ROOT

BROKER_DOC = (PROJECT_ROOT / "docs" / "broker.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("fix", FIXES, ids=[f.id for f in FIXES])
def test_the_patch_is_where_the_catalogue_says(fix: Fix) -> None:
    module_name, _, path = fix.where.partition(":")
    target: object = importlib.import_module(module_name)
    for name in path.split("."):
        target = getattr(target, name)


@pytest.mark.parametrize("fix", FIXES, ids=[f.id for f in FIXES])
def test_the_patch_has_its_row_in_the_broker_doc(fix: Fix) -> None:
    rows = [line for line in BROKER_DOC.splitlines() if line.startswith(f"| {fix.id} |")]
    assert len(rows) == 1, f"docs/broker.md needs one row for {fix.id}"
    assert fix.where.split(":")[1].split(".")[0] in rows[0]


@pytest.mark.parametrize("fix", [f for f in FIXES if not f.test.startswith("none:")], ids=lambda f: f.id)
def test_the_named_test_exists(fix: Fix) -> None:
    path, _, name = fix.test.partition("::")
    source = (PROJECT_ROOT / path).read_text(encoding="utf-8")
    assert re.search(rf"^(async )?def {re.escape(name)}\(", source, re.MULTILINE), fix.test


def test_ids_are_unique() -> None:
    assert len({f.id for f in FIXES}) == len(FIXES)


def test_only_the_wiring_imports_the_fixes() -> None:
    """The stages and their domain see the runtime (state, stage), never a workaround directly."""
    importers = sorted(
        str(path.relative_to(PROJECT_ROOT))
        for package in ("schemas", "services/ingest", "services/correlate", "services/alert", "services/console")
        for path in (PROJECT_ROOT / package).rglob("*.py")
        if "runtime.fixes" in path.read_text(encoding="utf-8")
    )
    assert importers == []

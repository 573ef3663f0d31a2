"""The checked-in JSON Schemas match the models: a contract change without `make schemas` fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import export

REGENERATE = "run `make schemas` (python -m schemas.export) and commit schemas/json/"


@pytest.mark.parametrize(("name", "mode"), [(name, mode) for name, _, mode in export.contracts()])
def test_schema_file_is_current(name: str, mode: str) -> None:
    path = export.JSON_DIR / f"{name}.v1.schema.json"
    assert path.exists(), f"{path.name} is missing: {REGENERATE}"
    model = next(model for stem, model, _ in export.contracts() if stem == name)
    current = export.render(model, mode, name)
    assert path.read_text(encoding="utf-8") == current, f"{path.name} is stale: {REGENERATE}"


def test_no_schema_file_without_a_model() -> None:
    assert export.stale_files() == [], REGENERATE


def test_check_flags_stale_missing_and_orphan_files(tmp_path: Path) -> None:
    assert export.main(["--dir", str(tmp_path)]) == 0
    assert export.main(["--dir", str(tmp_path), "--check"]) == 0
    report_file = tmp_path / "report.v1.schema.json"
    changed = report_file.read_text(encoding="utf-8").replace('"report_id"', '"id"')
    report_file.write_text(changed, encoding="utf-8")
    (tmp_path / "incident.v1.schema.json").unlink()
    (tmp_path / "old.v1.schema.json").write_text("{}\n", encoding="utf-8")
    assert export.stale_files(tmp_path) == [
        "incident.v1.schema.json: missing",
        "report.v1.schema.json: stale",
        "old.v1.schema.json: no model generates it",
    ]
    assert export.main(["--dir", str(tmp_path), "--check"]) == 1
    export.main(["--dir", str(tmp_path)])
    assert export.stale_files(tmp_path) == ["old.v1.schema.json: no model generates it"]


def test_report_schema_describes_the_contract() -> None:
    schema = json.loads((export.JSON_DIR / "report.v1.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == export.DRAFT
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {
        "report_id", "source", "source_party", "ceasefire_id", "observed_at", "location", "violation_type",
    }
    assert "ingested_at" not in schema["properties"]
    accepted = json.loads((export.JSON_DIR / "accepted_report.v1.schema.json").read_text(encoding="utf-8"))
    assert "ingested_at" in accepted["required"]


def test_files_are_sorted_indented_and_end_with_a_newline() -> None:
    for path in sorted(export.JSON_DIR.glob("*.schema.json")):
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n") and not text.endswith("\n\n"), path.name
        canonical = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        assert text == canonical, path.name

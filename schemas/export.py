"""Export the message contracts as JSON Schema files, so consumers in any language can check records.

`python -m schemas.export` (or `make schemas`) writes `schemas/json/<name>.v1.schema.json`;
`--check` writes nothing and exits 1 listing the files that are stale, missing or no longer generated.
Input messages (Report) are described as a producer must write them (validation mode); output messages
as ingest and the other stages write them (serialization mode: defaulted fields are always present).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from schemas.incident import Incident
from schemas.report import AcceptedReport, Report

JSON_DIR = Path(__file__).resolve().parent / "json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
Mode = Literal["validation", "serialization"]

# Contracts still being written elsewhere: exported once their module exists.
OPTIONAL: tuple[tuple[str, str, str], ...] = (
    ("alert", "schemas.alert", "Alert"),
    ("fragility_snapshot", "schemas.fragility", "FragilitySnapshot"),
)


def contracts() -> list[tuple[str, type[BaseModel], Mode]]:
    """Every exported message: file name stem, model, and which side of the wire it describes."""
    found: list[tuple[str, type[BaseModel], Mode]] = [
        ("report", Report, "validation"),
        ("accepted_report", AcceptedReport, "serialization"),
        ("incident", Incident, "serialization"),
    ]
    for name, module_name, class_name in OPTIONAL:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as missing:
            if missing.name != module_name:  # the module exists but one of its imports does not
                raise
            continue
        found.append((name, getattr(module, class_name), "serialization"))
    return found


def render(model: type[BaseModel], mode: Mode, name: str) -> str:
    """The schema file's exact text: sorted keys, 2-space indent, trailing newline."""
    schema = model.model_json_schema(mode=mode)
    schema = {"$schema": DRAFT, "$id": f"{name}.v1.schema.json", **schema}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_files(directory: Path = JSON_DIR) -> dict[Path, str]:
    return {
        directory / f"{name}.v1.schema.json": render(model, mode, name) for name, model, mode in contracts()
    }


def stale_files(directory: Path = JSON_DIR) -> list[str]:
    """What `--check` reports: files whose text differs from the models, is missing, or has no model."""
    expected = expected_files(directory)
    problems = [
        f"{path.name}: {'stale' if path.exists() else 'missing'}"
        for path, text in sorted(expected.items())
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    problems += [
        f"{path.name}: no model generates it"
        for path in sorted(directory.glob("*.schema.json"))
        if path not in expected
    ]
    return problems


def write(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in sorted(expected_files(directory).items()):
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any schema file is out of date")
    parser.add_argument("--dir", type=Path, default=JSON_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_files(args.dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("regenerate with `make schemas` (python -m schemas.export)", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

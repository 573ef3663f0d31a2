"""The README is the contract for names (settings, topics, commands): keep it true."""

from __future__ import annotations

from click.testing import CliRunner

from schemas.topics import TOPICS
from services.console.cli import main
from services.runtime.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
TOPICS_DOC = (PROJECT_ROOT / "docs" / "topics.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [f"CEASEFIRE_{name.upper()}" for name in Settings.model_fields if f"CEASEFIRE_{name.upper()}" not in README]
    assert not missing, f"README configuration table lacks {missing}"


def test_every_topic_is_documented() -> None:
    for spec in TOPICS.values():
        assert spec.default_name in README, spec.default_name
        assert spec.default_name in TOPICS_DOC, spec.default_name


def test_every_command_is_documented() -> None:
    for name in main.commands:
        assert f"ceasefire {name}" in README, name


def test_commands_answer_help() -> None:
    runner = CliRunner()
    for name in main.commands:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)

"""Local table state survives only a clean stop (services/runtime/runner.py `prepare_local_state`)."""

from __future__ import annotations

from pathlib import Path

from services.runtime.runner import CLEAN_MARK, FAUST_APPDIR, prepare_local_state


def test_state_of_a_cleanly_stopped_worker_is_kept(tmp_path: Path) -> None:
    (tmp_path / FAUST_APPDIR).mkdir()
    (tmp_path / FAUST_APPDIR / "db").write_text("entries")
    (tmp_path / CLEAN_MARK).touch()
    assert prepare_local_state(tmp_path) is False
    assert (tmp_path / FAUST_APPDIR / "db").read_text() == "entries"
    assert not (tmp_path / CLEAN_MARK).exists(), "the mark is for the next start only after a clean stop"


def test_state_left_by_a_killed_worker_is_wiped_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / FAUST_APPDIR).mkdir()
    (tmp_path / FAUST_APPDIR / "db").write_text("entries ahead of the changelog")
    (tmp_path / "run.log").write_text("a log of `make run`")
    assert prepare_local_state(tmp_path) is True
    assert [p.name for p in tmp_path.iterdir()] == ["run.log"]


def test_a_new_directory_is_made(tmp_path: Path) -> None:
    assert prepare_local_state(tmp_path / "new") is False
    assert (tmp_path / "new").is_dir()

"""Local table state survives only a clean stop (services/runtime/runner.py `prepare_local_state`)."""

from __future__ import annotations

from pathlib import Path

from services.runtime.runner import CLEAN_MARK, CLUSTER_FILE, FAUST_APPDIR, prepare_local_state


def test_state_of_a_cleanly_stopped_worker_is_kept(tmp_path: Path) -> None:
    (tmp_path / FAUST_APPDIR).mkdir()
    (tmp_path / FAUST_APPDIR / "db").write_text("entries")
    (tmp_path / CLEAN_MARK).touch()
    assert prepare_local_state(tmp_path) is None
    assert (tmp_path / FAUST_APPDIR / "db").read_text() == "entries"
    assert not (tmp_path / CLEAN_MARK).exists(), "the mark is for the next start only after a clean stop"


def test_state_left_by_a_killed_worker_is_wiped_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / FAUST_APPDIR).mkdir()
    (tmp_path / FAUST_APPDIR / "db").write_text("entries ahead of the changelog")
    (tmp_path / "run.log").write_text("a log of `make run`")
    assert prepare_local_state(tmp_path) is not None
    assert [p.name for p in tmp_path.iterdir()] == ["run.log"]


def test_a_new_directory_is_made(tmp_path: Path) -> None:
    assert prepare_local_state(tmp_path / "new") is None
    assert (tmp_path / "new").is_dir()


def test_state_of_another_kafka_cluster_is_wiped(tmp_path: Path) -> None:
    """A worker stopped cleanly against one (memory-only) broker, started against a new one."""
    assert prepare_local_state(tmp_path, "cluster-a") is None
    (tmp_path / FAUST_APPDIR / "db").write_text("entries of cluster a")
    (tmp_path / CLEAN_MARK).touch()
    assert prepare_local_state(tmp_path, "cluster-a") is None  # the same cluster: kept
    assert (tmp_path / FAUST_APPDIR / "db").exists()
    (tmp_path / CLEAN_MARK).touch()
    reason = prepare_local_state(tmp_path, "cluster-b")
    assert reason is not None and "cluster-a" in reason and "cluster-b" in reason
    assert not (tmp_path / FAUST_APPDIR / "db").exists()
    assert (tmp_path / FAUST_APPDIR / CLUSTER_FILE).read_text() == "cluster-b"


def test_state_without_a_cluster_id_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / FAUST_APPDIR).mkdir()
    (tmp_path / FAUST_APPDIR / "db").write_text("entries of a cluster nobody wrote down")
    (tmp_path / CLEAN_MARK).touch()
    assert prepare_local_state(tmp_path, "cluster-b") is not None
    assert not (tmp_path / FAUST_APPDIR / "db").exists()

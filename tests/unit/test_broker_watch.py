"""The broker watch's judgement (services/runtime/watchdog.py): said once, gone after a bound, another
cluster at once."""

from __future__ import annotations

from services.runtime.watchdog import BrokerWatch


def test_answers_from_the_same_cluster_are_ok() -> None:
    watch = BrokerWatch("c-1", lost_after=10)
    assert [watch.answer("c-1", t) for t in (0, 2, 4)] == ["ok", "ok", "ok"]


def test_a_lost_broker_is_said_once_then_gone_after_the_bound() -> None:
    watch = BrokerWatch("c-1", lost_after=10)
    verdicts = [watch.answer(None, t) for t in (0, 2, 4, 9.9, 10)]
    assert verdicts == ["lost", "waiting", "waiting", "waiting", "gone"]


def test_a_broker_back_in_time_resets_the_bound() -> None:
    watch = BrokerWatch("c-1", lost_after=10)
    assert [watch.answer(a, t) for a, t in ((None, 0), (None, 8), ("c-1", 9), ("c-1", 11))] == [
        "lost", "waiting", "back", "ok"
    ]
    assert [watch.answer(None, t) for t in (12, 21, 22)] == ["lost", "waiting", "gone"]


def test_another_cluster_on_the_same_address_is_at_once() -> None:
    watch = BrokerWatch("c-1", lost_after=10)
    assert watch.answer(None, 0) == "lost"
    assert watch.answer("c-2", 1) == "other_cluster"

"""The forwarder against a real Alertmanager: alert records on the embedded broker reach it with their
labels, are grouped by ceasefire, notify a webhook, resolve; an Alertmanager that comes up late still
gets them; a batch it refuses is given up, not retried in a loop (docs/alertmanager.md)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas.alert import Alert, Annotations, fingerprint
from schemas.topics import Role
from services.notify.forwarder import AlertForwarder
from services.runtime.admin import ensure_topics
from services.runtime.broker import free_port
from services.runtime.settings import Settings
from tests.support.alertmanager import Alertmanager, Webhook, alertmanager_binary, config
from tests.support.kafka import eventually, produce

X, Y = "in-pk-2025-05-10", "aa-bb-2025-06-01"
START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)


def record(
    name: str, ceasefire: str, where: dict[str, str], version: int = 1, *,
    severity: str = "warning", resolved_after_hours: float | None = None, summary: str = "",
) -> Alert:
    labels = {"alertname": name, "ceasefire": ceasefire, "severity": severity, **where}
    ends = None if resolved_after_hours is None else START + timedelta(hours=resolved_after_hours)
    return Alert(
        fingerprint=fingerprint(labels), labels=labels,
        annotations=Annotations(summary=summary or f"{name} v{version}", description="test", incident_ids=["inc-1"]),
        status="firing" if ends is None else "resolved", starts_at=START, ends_at=ends,
        updated_at=ends or START + timedelta(minutes=version), version=version,
    )


def encoded(alerts: list[Alert]) -> list[tuple[bytes | None, bytes | None]]:
    return [(a.fingerprint.encode(), a.model_dump_json().encode()) for a in alerts]


@pytest.fixture
def binary() -> str:
    return alertmanager_binary()


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = await Webhook().start()
    yield hook
    await hook.stop()


@pytest.fixture
def alertmanagers() -> Iterator[list[Alertmanager]]:
    started: list[Alertmanager] = []
    yield started
    for am in started:
        am.stop()


@dataclass(frozen=True)
class Running:
    forwarder: AlertForwarder
    registry: CollectorRegistry

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def forwarding(settings: Settings) -> AsyncIterator[Running]:
    registry = CollectorRegistry()
    forwarder = AlertForwarder(settings, registry)
    task = asyncio.create_task(forwarder.run())
    try:
        yield Running(forwarder, registry)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def topic_settings(broker_url: str, alertmanager_url: str) -> Settings:
    settings = Settings(broker=broker_url).isolated("am").model_copy(update={
        "partitions": 2, "alertmanager_url": alertmanager_url, "alertmanager_resend_seconds": 1.0,
        "alertmanager_backoff_max_seconds": 0.5, "alertmanager_timeout_seconds": 2.0,
    })
    await ensure_topics(settings, [Role.ALERTS])
    return settings


def active(alerts: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Alertmanager's active alerts by (alertname, ceasefire, severity)."""
    return {(a["labels"]["alertname"], a["labels"]["ceasefire"], a["labels"]["severity"]): a for a in alerts}


async def until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    async def check() -> bool:
        result = condition()
        return bool(await result if inspect.isawaitable(result) else result)
    await eventually(check, timeout=timeout, interval=0.2, what=what)


async def test_alerts_reach_alertmanager_grouped_notified_and_resolved(broker, binary, webhook, alertmanagers, tmp_path: Path) -> None:
    am = await Alertmanager(binary, tmp_path / "am", config(webhook)).start()
    alertmanagers.append(am)
    settings = await topic_settings(broker.url, am.url)
    poonch, uri = {"sector": "Poonch"}, {"sector": "Uri"}
    violation_v2 = record("CeasefireViolation", X, poonch, 2, summary="the newest")
    await produce(settings.bootstrap, settings.topic(Role.ALERTS), encoded([
        record("CeasefireViolation", X, poonch, 1),
        violation_v2,
        record("CeasefireViolation", X, poonch, 1),  # re-delivered: older than what is held
        record("Escalation", X, poonch, severity="critical"),
        record("CeasefireViolation", Y, uri),
        record("MutualAccusation", X, {"incident": "inc-9"}, 1),
        record("MutualAccusation", X, {"incident": "inc-9"}, 2, resolved_after_hours=6),  # over before we start
    ]))

    async with forwarding(settings) as forwarder:
        wanted = {("CeasefireViolation", X, "warning"), ("Escalation", X, "critical"), ("CeasefireViolation", Y, "warning")}
        await until(lambda: _has(am, wanted), "the three firing alerts in Alertmanager")
        shown = active(await am.get("/api/v2/alerts"))
        held = shown[("CeasefireViolation", X, "warning")]
        assert held["labels"] == violation_v2.labels
        assert held["annotations"]["summary"] == "the newest" and held["annotations"]["version"] == "2"
        assert datetime.fromisoformat(held["startsAt"]) == START  # event time
        assert datetime.fromisoformat(held["endsAt"]) > datetime.now(UTC)  # kept firing between resends

        groups = await am.get("/api/v2/alerts/groups")
        assert sorted((g["labels"]["alertname"], g["labels"]["ceasefire"]) for g in groups) == sorted(
            [("CeasefireViolation", X), ("CeasefireViolation", Y), ("Escalation", X)]
        )
        assert all(set(g["labels"]) == {"alertname", "ceasefire"} for g in groups)

        await until(lambda: _notified(webhook, "desk", "firing", 2) and _notified(webhook, "critical", "firing", 1),
                    "firing notifications: two desk groups, one critical")
        critical = webhook.notifications("critical", "firing")[0]
        assert critical["groupLabels"] == {"alertname": "Escalation", "ceasefire": X}
        assert not any(a["labels"]["alertname"] == "MutualAccusation" for _, b in webhook.received for a in b["alerts"])

        sent = forwarder.value("ceasefire_alertmanager_sent_total")
        await until(lambda: _above(forwarder, "ceasefire_alertmanager_sent_total", sent + 3), "a resend of the firing alerts")

        # Warning turns critical: Alertmanager must end the warning label set, not keep both firing.
        await produce(settings.bootstrap, settings.topic(Role.ALERTS), encoded([
            record("CeasefireViolation", X, poonch, 3, severity="critical"),
        ]))
        swapped = (wanted - {("CeasefireViolation", X, "warning")}) | {("CeasefireViolation", X, "critical")}
        await until(lambda: _exactly(am, swapped), "the warning replaced by the critical label set")
        # Resolving before Alertmanager first notified would notify nothing (it never reports a resolved
        # alert it did not report firing): wait for the critical route's notification first.
        await until(lambda: _notified_of(webhook, "critical", "firing", "CeasefireViolation"), "the critical notification")
        # ... and the warning ended when the critical record came (event time), not by running out.
        await until(lambda: _ended(webhook, "desk", "warning"), "the warning's resolved notification")
        assert _ended(webhook, "desk", "warning") == [START + timedelta(minutes=3)]

        # Resolved: gone from the active alerts, and the webhook hears of it (send_resolved).
        await produce(settings.bootstrap, settings.topic(Role.ALERTS), encoded([
            record("CeasefireViolation", X, poonch, 4, severity="critical", resolved_after_hours=6),
        ]))
        await until(lambda: _exactly(am, wanted - {("CeasefireViolation", X, "warning")}), "the alert resolved")
        await until(lambda: _resolved(webhook, "CeasefireViolation", "critical"), "a resolved notification")
        ended = next(a for b in webhook.notifications("critical", "resolved") for a in b["alerts"]
                     if a["labels"]["alertname"] == "CeasefireViolation")
        assert datetime.fromisoformat(ended["endsAt"]) == START + timedelta(hours=6)  # event time

        assert forwarder.value("ceasefire_alertmanager_pending") == 0
        for reason in ("unreachable", "unavailable", "rejected"):
            assert forwarder.value("ceasefire_alertmanager_failures_total", reason=reason) == 0


async def test_an_alertmanager_down_at_first_gets_the_alerts_when_it_comes_up(broker, binary, webhook, alertmanagers, tmp_path: Path) -> None:
    port = free_port()
    settings = await topic_settings(broker.url, f"http://127.0.0.1:{port}")
    alerts = [record("CeasefireViolation", X, {"sector": s}) for s in ("Poonch", "Uri", "Kupwara")]
    await produce(settings.bootstrap, settings.topic(Role.ALERTS), encoded(alerts))

    async with forwarding(settings) as forwarder:
        await until(lambda: _above(forwarder, "ceasefire_alertmanager_failures_total", 2, reason="unreachable"),
                    "failed attempts counted")
        assert forwarder.value("ceasefire_alertmanager_pending") == 3
        assert forwarder.value("ceasefire_alertmanager_sent_total") == 0

        am = await Alertmanager(binary, tmp_path / "am", config(webhook), port=port).start()
        alertmanagers.append(am)
        await until(lambda: _sectors(am, {"Poonch", "Uri", "Kupwara"}), "the alerts delivered once Alertmanager is up")
        await until(lambda: _equal(forwarder, "ceasefire_alertmanager_pending", 0), "nothing pending")
        assert forwarder.value("ceasefire_alertmanager_sent_total") >= 3


async def test_a_refused_batch_is_given_up_and_its_valid_alerts_kept(broker, binary, webhook, alertmanagers, tmp_path: Path) -> None:
    am = await Alertmanager(binary, tmp_path / "am", config(webhook)).start()
    alertmanagers.append(am)
    settings = await topic_settings(broker.url, am.url)
    settings = settings.model_copy(update={"alertmanager_resend_seconds": 60.0})  # no resend during the test
    bad = record("CeasefireViolation", X, {"not-a-label-name": "x"})  # Alertmanager's label names are [a-zA-Z_][a-zA-Z0-9_]*
    good = record("CeasefireViolation", X, {"sector": "Poonch"})
    await produce(settings.bootstrap, settings.topic(Role.ALERTS), encoded([bad, good]))

    async with forwarding(settings) as forwarder:
        await until(lambda: _above(forwarder, "ceasefire_alertmanager_failures_total", 0, reason="rejected"), "a 400")
        await until(lambda: _sectors(am, {"Poonch"}), "the valid alert of the refused batch kept")
        assert forwarder.value("ceasefire_alertmanager_pending") == 0
        # A later record goes in a POST of its own: were the refused batch retried, it would ride along
        # and be refused again.
        await produce(settings.bootstrap, settings.topic(Role.ALERTS), encoded([record("CeasefireViolation", X, {"sector": "Uri"})]))
        await until(lambda: _sectors(am, {"Poonch", "Uri"}), "the later alert delivered")
        assert forwarder.value("ceasefire_alertmanager_failures_total", reason="rejected") == 1
        assert forwarder.value("ceasefire_alertmanager_sent_total") == 1  # the later one; the refused batch is not counted


async def _has(am: Alertmanager, wanted: set[tuple[str, str, str]]) -> bool:
    return wanted <= set(active(await am.get("/api/v2/alerts")))


async def _exactly(am: Alertmanager, wanted: set[tuple[str, str, str]]) -> bool:
    return set(active(await am.get("/api/v2/alerts"))) == wanted


async def _sectors(am: Alertmanager, wanted: set[str]) -> bool:
    return {a["labels"].get("sector") for a in await am.get("/api/v2/alerts")} == wanted


def _notified(webhook: Webhook, receiver: str, status: str, groups: int) -> bool:
    return len({tuple(sorted(b["groupLabels"].items())) for b in webhook.notifications(receiver, status)}) >= groups


def _resolved(webhook: Webhook, name: str, severity: str) -> bool:
    return any(a["labels"]["alertname"] == name and a["labels"]["severity"] == severity and a["status"] == "resolved"
               for _, body in webhook.received for a in body["alerts"])


async def _above(forwarder: Running, name: str, floor: float, **labels: str) -> bool:
    return forwarder.value(name, **labels) > floor


async def _equal(forwarder: Running, name: str, wanted: float) -> bool:
    return forwarder.value(name) == wanted


def _notified_of(webhook: Webhook, receiver: str, status: str, name: str) -> bool:
    return any(b["groupLabels"].get("alertname") == name for b in webhook.notifications(receiver, status))


def _ended(webhook: Webhook, receiver: str, severity: str) -> list[datetime]:
    return [datetime.fromisoformat(a["endsAt"]) for b in webhook.notifications(receiver, "resolved") for a in b["alerts"]
            if a["labels"]["ceasefire"] == X and a["labels"]["severity"] == severity]

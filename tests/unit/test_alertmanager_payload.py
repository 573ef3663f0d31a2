"""The Alertmanager mapping and the forwarder's book, without a broker or Alertmanager: records in,
v2 alert objects and batches out (services/notify/alertmanager.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas.alert import Alert, Annotations, fingerprint
from services.notify.alertmanager import (
    FIRING_SPAN_RESENDS,
    AlertBook,
    alerts_endpoint,
    backoff_seconds,
    redacted,
    to_alertmanager,
)
from services.runtime.settings import PROJECT_ROOT

START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
NOW = datetime(2025, 5, 12, 9, 0, tzinfo=UTC)  # the wall clock: event time lies behind it
RESEND = timedelta(seconds=60)


def alert(
    version: int = 1,
    *,
    status: str = "firing",
    severity: str = "warning",
    sector: str = "Poonch",
    name: str = "CeasefireViolation",
    hours: float = 0.0,
    ids: tuple[str, ...] = ("inc-2", "inc-1"),
) -> Alert:
    labels = {"alertname": name, "ceasefire": "in-pk-2025-05-10", "severity": severity, "sector": sector}
    updated = START + timedelta(hours=hours)
    return Alert(
        fingerprint=fingerprint(labels),
        labels=labels,
        annotations=Annotations(summary=f"{name} in {sector}", description="why", incident_ids=list(ids)),
        status=status,  # type: ignore[arg-type]
        starts_at=START,
        ends_at=updated if status == "resolved" else None,
        updated_at=updated,
        version=version,
    )


# -- the v2 alert object ---------------------------------------------------------------------------


def test_firing_alert_is_valid_for_four_resends_from_now() -> None:
    body = to_alertmanager(alert(), NOW, RESEND, "https://desk.example/alerts/{fingerprint}?c={ceasefire}")
    assert body == {
        "labels": {"alertname": "CeasefireViolation", "ceasefire": "in-pk-2025-05-10", "severity": "warning", "sector": "Poonch"},
        "annotations": {
            "summary": "CeasefireViolation in Poonch",
            "description": "why",
            "incident_ids": "inc-2, inc-1",
            "fingerprint": alert().fingerprint,
            "version": "1",
        },
        "startsAt": "2025-05-10T12:00:00Z",  # event time, however old
        "endsAt": (NOW + FIRING_SPAN_RESENDS * RESEND).isoformat().replace("+00:00", "Z"),
        "generatorURL": f"https://desk.example/alerts/{alert().fingerprint}?c=in-pk-2025-05-10",
    }


def test_resolved_alert_ends_at_its_event_time_and_never_ahead_of_the_clock() -> None:
    assert to_alertmanager(alert(2, status="resolved", hours=6), NOW, RESEND)["endsAt"] == "2025-05-10T18:00:00Z"
    early_clock = START + timedelta(hours=5, minutes=55)  # event time 5 minutes ahead of the wall clock
    assert to_alertmanager(alert(2, status="resolved", hours=6), early_clock, RESEND)["endsAt"] == "2025-05-10T17:55:00Z"


def test_no_generator_url_and_no_empty_incident_ids_unless_there_are_some() -> None:
    body = to_alertmanager(alert(ids=()), NOW, RESEND)
    assert "generatorURL" not in body and "incident_ids" not in body["annotations"]


def test_the_example_in_the_docs_is_what_the_code_sends() -> None:
    doc = (PROJECT_ROOT / "docs" / "alertmanager.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"<!-- example: ([^>]*?) -->\n```json\n(.*?)^```$", doc, re.MULTILINE | re.DOTALL))
    marker, sent = next((m, body) for m, body in blocks.items() if m.startswith("alertmanager-alert"))
    given_at = dict(part.split("=") for part in marker.split()[1:])
    record = Alert.model_validate_json(blocks["alert-record"])
    now = datetime.fromisoformat(given_at["now"])
    assert to_alertmanager(record, now, timedelta(seconds=float(given_at["resend"]))) == json.loads(sent)


# -- the book -------------------------------------------------------------------------------------


def test_redelivered_and_older_versions_are_dropped() -> None:
    book = AlertBook(60)
    assert book.offer(alert(2, severity="critical"))
    assert not book.offer(alert(2, severity="critical"))
    assert not book.offer(alert(1))
    assert [a.version for a in book.take(0, 10).alerts] == [2]


def test_changed_alerts_go_at_once_firing_ones_again_when_due_resolved_ones_once() -> None:
    book = AlertBook(60)
    book.offer(alert())
    book.offer(alert(1, sector="Kupwara"))
    batch = book.take(0, 10)
    assert len(batch) == 2 and book.pending == 2
    book.mark_delivered(batch, 0)
    assert book.pending == 0 and not book.take(59, 10) and book.next_due(30) == 30
    assert [a.labels["sector"] for a in book.take(60, 10).alerts] == ["Poonch", "Kupwara"]

    book.offer(alert(2, status="resolved", hours=6))
    resolved = book.take(61, 10)
    assert [(a.labels["sector"], a.status) for a in resolved.alerts] == [("Poonch", "resolved"), ("Kupwara", "firing")]
    book.mark_delivered(resolved, 61)
    assert not book.take(120, 10)  # the resolved one is not sent again; Kupwara is next due at 121
    assert [a.labels["sector"] for a in book.take(121, 10).alerts] == ["Kupwara"]
    assert book.alerts.keys() == {alert(sector="Kupwara").fingerprint}  # a delivered resolved alert: only its version
    assert book.versions[alert().fingerprint] == 2


def test_a_newer_record_during_a_post_stays_pending() -> None:
    book = AlertBook(60)
    book.offer(alert())
    batch = book.take(0, 10)
    book.offer(alert(2, status="resolved", hours=6))
    book.mark_delivered(batch, 0)
    assert book.pending == 1 and book.take(0, 10).alerts[0].version == 2


def test_limit_takes_changed_alerts_first() -> None:
    book = AlertBook(60)
    book.offer(alert(sector="A"))
    book.mark_delivered(book.take(0, 10), 0)
    for sector in ("B", "C", "D"):
        book.offer(alert(sector=sector))
    assert [a.labels["sector"] for a in book.take(100, 2).alerts] == ["B", "C"]
    assert [a.labels["sector"] for a in book.take(100, 4).alerts] == ["B", "C", "D", "A"]


def test_a_severity_change_resolves_the_label_set_alertmanager_holds() -> None:
    """Alertmanager identifies an alert by all its labels: the warning must end when it turns critical."""
    book = AlertBook(60)
    book.offer(alert())
    book.mark_delivered(book.take(0, 10), 0)
    book.offer(alert(2, severity="critical", hours=3))
    batch = book.take(1, 10)
    body = batch.payload(NOW, RESEND)
    assert [(b["labels"]["severity"], b["endsAt"]) for b in body] == [
        ("warning", "2025-05-10T15:00:00Z"),  # the old label set, ended when the new record came
        ("critical", (NOW + FIRING_SPAN_RESENDS * RESEND).isoformat().replace("+00:00", "Z")),
    ]
    book.mark_delivered(batch, 1)
    assert not book.take(61, 10).retirements  # retired once


def test_an_undelivered_severity_flip_back_retires_nothing() -> None:
    book = AlertBook(60)
    book.offer(alert())
    book.mark_delivered(book.take(0, 10), 0)
    book.offer(alert(2, severity="critical"))
    book.offer(alert(3, severity="warning"))
    assert not book.take(1, 10).retirements


records = st.lists(
    st.tuples(
        st.sampled_from(["Poonch", "Kupwara", "Uri"]),
        st.integers(min_value=1, max_value=6),
        st.sampled_from(["firing", "resolved"]),
        st.sampled_from(["warning", "critical"]),
    ),
    max_size=30,
)


@given(records, st.randoms(use_true_random=False))
def test_any_redelivery_order_gives_the_same_held_state(chosen: list[tuple[str, int, str, str]], rng) -> None:
    """The newest version per fingerprint wins, whatever order and how often records come."""
    # One content per (fingerprint, version), as the alert stage guarantees.
    unique = {(sector, version): alert(version, sector=sector, status=status, severity=severity, hours=version)
              for sector, version, status, severity in chosen}
    stream = list(unique.values())
    redelivered = stream + rng.sample(stream, k=len(stream) // 2)
    rng.shuffle(redelivered)
    first, second = AlertBook(60), AlertBook(60)
    for record in stream:
        first.offer(record)
    for record in redelivered:
        second.offer(record)
    assert first.versions == second.versions
    assert first.alerts == second.alerts
    assert set(first.unsent) == set(second.unsent)
    assert {a.fingerprint: a for a in first.take(0, 100).alerts} == {a.fingerprint: a for a in second.take(0, 100).alerts}


# -- transport helpers ------------------------------------------------------------------------------


def test_backoff_doubles_to_its_ceiling_with_jitter_in_the_upper_half() -> None:
    top = [backoff_seconds(n, 30, lambda low, high: high) for n in range(1, 10)]
    assert top == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_seconds(3, 30, lambda low, high: low) == 1
    assert backoff_seconds(10_000, 30, lambda low, high: high) == 30


def test_credentials_never_reach_a_log_line() -> None:
    url = alerts_endpoint("https://desk:s3cret@am.example:9443/prefix/?token=abc")
    assert redacted(url) == "https://am.example:9443/prefix/api/v2/alerts"
    assert redacted("http://127.0.0.1:9093/api/v2/alerts") == "http://127.0.0.1:9093/api/v2/alerts"

"""What the desk asks of the archive (the read API and the `ceasefire` CLI): plain functions over an
engine, one query each, newest first, keyset-paged by an opaque cursor (docs/archive.md)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Engine, and_, exists, func, or_, select

from schemas.incident import GONE
from services.archive import tables as t


class BadCursor(ValueError):
    """A cursor this archive did not hand out."""


def encode_cursor(at: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([at.isoformat(), key])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        parsed = datetime.fromisoformat(at)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadCursor("not a cursor this API handed out") from exc
    if parsed.tzinfo is None or not isinstance(key, str):
        raise BadCursor("not a cursor this API handed out")
    return parsed, key


@dataclass(frozen=True)
class IncidentQuery:
    ceasefire: str | None = None
    since: datetime | None = None  # last observed at or after
    until: datetime | None = None  # first observed before
    sectors: Sequence[str] = ()
    statuses: Sequence[str] = ()  # none: every incident that still exists (not merged, not withdrawn)
    min_severity: int | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass
class Page:
    items: list[dict[str, Any]] = field(default_factory=list)
    cursor: str | None = None  # for the next page; None: this was the last


def incidents(engine: Engine, q: IncidentQuery) -> Page:
    i = t.incidents
    where: list[ColumnElement[bool]] = [i.c.status.in_(q.statuses) if q.statuses else i.c.status.not_in(sorted(GONE))]
    if q.ceasefire:
        where.append(i.c.ceasefire_id == q.ceasefire)
    if q.since:
        where.append(i.c.last_observed_at >= q.since)
    if q.until:
        where.append(i.c.first_observed_at < q.until)
    if q.min_severity:
        where.append(i.c.severity >= q.min_severity)
    if q.sectors:
        m = t.incident_members
        where.append(exists().where(and_(m.c.incident_id == i.c.incident_id, func.lower(m.c.sector).in_(
            [s.lower() for s in q.sectors]))))
    if q.cursor:
        at, key = decode_cursor(q.cursor)
        where.append(or_(i.c.last_observed_at < at, and_(i.c.last_observed_at == at, i.c.incident_id < key)))
    stmt = (
        select(i.c.body, i.c.last_observed_at, i.c.incident_id)
        .where(*where)
        .order_by(i.c.last_observed_at.desc(), i.c.incident_id.desc())
        .limit(q.limit + 1)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    page = Page([row.body for row in rows[: q.limit]])
    if len(rows) > q.limit:
        last = rows[q.limit - 1]
        page.cursor = encode_cursor(last.last_observed_at, last.incident_id)
    return page


def incident(engine: Engine, incident_id: str, version: int | None = None) -> dict[str, Any] | None:
    """The current version (or the one asked for), with the versions the archive holds."""
    with engine.connect() as conn:
        if version is None:
            body = conn.execute(select(t.incidents.c.body).where(t.incidents.c.incident_id == incident_id)).scalar()
        else:
            v = t.incident_versions
            body = conn.execute(select(v.c.body).where(v.c.incident_id == incident_id, v.c.version == version)).scalar()
    return dict(body) if body is not None else None


def incident_versions(engine: Engine, incident_id: str) -> list[dict[str, Any]]:
    v = t.incident_versions
    with engine.connect() as conn:
        rows = conn.execute(select(v.c.body).where(v.c.incident_id == incident_id).order_by(v.c.version)).all()
    return [row.body for row in rows]


def report(engine: Engine, source: str, report_id: str) -> dict[str, Any] | None:
    """What became of a report: accepted (or retracted) once any revision was; else a duplicate; else
    dead-lettered; with every duplicate and rejection of it and the incident it is in."""
    key_r = and_(t.reports.c.source == source, t.reports.c.report_id == report_id)
    with engine.connect() as conn:
        current = conn.execute(select(t.reports).where(key_r)).mappings().first()
        revisions = conn.execute(
            select(t.report_revisions.c.revision, t.report_revisions.c.status, t.report_revisions.c.ingested_at)
            .where(t.report_revisions.c.source == source, t.report_revisions.c.report_id == report_id)
            .order_by(t.report_revisions.c.revision)
        ).mappings().all()
        d = t.duplicates
        repeats = conn.execute(
            select(d.c.rule, d.c.duplicate_of, d.c.at, d.c.origin_partition, d.c.origin_offset)
            .where(d.c.source == source, d.c.report_id == report_id).order_by(d.c.at, d.c.origin_offset)
        ).mappings().all()
        dl = t.dead_letters
        rejected = conn.execute(
            select(dl.c.reason, dl.c.problems, dl.c.revision, dl.c.at, dl.c.origin_partition, dl.c.origin_offset)
            .where(dl.c.source == source, dl.c.report_id == report_id).order_by(dl.c.at, dl.c.origin_offset)
        ).mappings().all()
        m = t.incident_members
        placed = conn.execute(
            select(m.c.incident_id, m.c.revision, t.incidents.c.version)
            .join(t.incidents, t.incidents.c.incident_id == m.c.incident_id)
            .where(m.c.source == source, m.c.report_id == report_id)
        ).mappings().first()
    if current is None and not repeats and not rejected:
        return None
    if current is not None:
        outcome = "retracted" if current["status"] == "retracted" else "accepted"
    else:
        outcome = "duplicate" if repeats else "dead_lettered"
    latest = repeats[-1] if repeats and outcome == "duplicate" else None
    return {
        "source": source,
        "report_id": report_id,
        "outcome": outcome,
        "duplicate_of": latest["duplicate_of"] if latest else None,
        "rule": latest["rule"] if latest else None,
        "repeats": sum(1 for r in repeats if r["rule"] == "exact" and r["duplicate_of"] == report_id),
        "ceasefire_id": current["ceasefire_id"] if current else None,
        "revision": current["revision"] if current else None,
        "retraction_reason": current["retraction_reason"] if current else None,
        "revisions": [_plain(r) for r in revisions],
        "duplicates": [_plain(r) for r in repeats],
        "rejections": [_plain(r) for r in rejected],
        "incident": _plain(placed) if placed and outcome == "accepted" else None,
        "report": current["body"] if current else None,
    }


def _plain(row: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items()}


def alerts(engine: Engine, firing: bool | None, ceasefire: str | None, limit: int) -> list[dict[str, Any]]:
    a = t.alerts
    where = []
    if firing is not None:
        where.append(a.c.status == ("firing" if firing else "resolved"))
    if ceasefire:
        where.append(a.c.ceasefire_id == ceasefire)
    stmt = select(a).where(*where).order_by(a.c.updated_at.desc(), a.c.fingerprint).limit(limit)
    with engine.connect() as conn:
        return [_alert(row) for row in conn.execute(stmt).mappings()]


def _alert(row: Any) -> dict[str, Any]:
    return {
        "fingerprint": row["fingerprint"], "labels": row["labels"], "annotations": row["annotations"],
        "status": row["status"], "starts_at": row["starts_at"].isoformat(),
        "ends_at": row["ends_at"].isoformat() if row["ends_at"] else None,
        "updated_at": row["updated_at"].isoformat(), "version": row["version"],
    }


def fragility(
    engine: Engine, ceasefire: str, since: datetime | None, until: datetime | None, kind: str, limit: int
) -> list[dict[str, Any]]:
    """The index over event time, oldest first (a backlog's past included: it is in the records)."""
    f = t.fragility
    where = [f.c.ceasefire_id == ceasefire, f.c.kind == kind]
    if since:
        where.append(f.c.as_of >= since)
    if until:
        where.append(f.c.as_of < until)
    stmt = select(f).where(*where).order_by(f.c.as_of.desc()).limit(limit)
    with engine.connect() as conn:
        rows = list(conn.execute(stmt).mappings())
    return [
        {"ceasefire_id": r["ceasefire_id"], "as_of": r["as_of"].isoformat(), "kind": r["kind"],
         "index": r["fragility_index"], "components": r["components"], "inputs": r["inputs"]}
        for r in reversed(rows)
    ]


def dead_letters(
    engine: Engine, since: datetime | None, reasons: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    dl = t.dead_letters
    where = []
    if since:
        where.append(dl.c.at >= since)
    if reasons:
        where.append(dl.c.reason.in_(reasons))
    stmt = select(dl).where(*where).order_by(dl.c.at.desc(), dl.c.origin_partition, dl.c.origin_offset.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(stmt).mappings()]

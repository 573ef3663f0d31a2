"""The read API, answered from the archive (docs/archive.md; the OpenAPI document is openapi.yaml
beside this module, shipped with the package).

Every answer is JSON. A bad parameter is a 400 naming it; an unknown id a 404; an archive not open yet
or unreachable a 503; nothing else (a test runs schemathesis against the OpenAPI document).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
import yaml
from faust.web import Request, Response, View
from sqlalchemy.exc import SQLAlchemyError

from schemas.incident import Status
from schemas.report import REPORT_ID_PATTERN, is_report_id, is_source_id
from schemas.source import spelling
from services.archive import params as p
from services.archive import queries
from services.archive.writer import ArchiveWriter
from services.runtime.context import Context

OPENAPI = Path(__file__).with_name("openapi.yaml")
STATUSES = Status.__args__  # type: ignore[attr-defined]
CEASEFIRE_ID = r"[A-Za-z0-9._-]{1,64}"
SECTOR = r".{1,64}"
FRAGILITY_KINDS = ("grid", "change")

Answer = tuple[int, Any]  # status, JSON body


def _query(request: Request) -> p.Query:
    return {name: request.query.getall(name) for name in request.query}


class ReadApi:
    """Each route's answer from its query; the Faust pages below only carry requests to it."""

    def __init__(self, ctx: Context, opened: asyncio.Future[ArchiveWriter]) -> None:
        self.ctx = ctx
        self.opened = opened
        self.most = ctx.settings.api_max_limit

    async def answer(self, route: Callable[..., Awaitable[Answer]], *args: Any) -> Answer:
        """Bad parameters → 400; an archive not open or not answering → 503."""
        if not self.opened.done():
            return 503, {"error": "the archive is opening; try again shortly"}
        try:
            return await route(*args)
        except p.BadParameter as bad:
            return 400, bad.answer()
        except queries.BadCursor as bad:
            return 400, {"error": f"cursor: {bad}", "parameter": "cursor"}
        except SQLAlchemyError as exc:
            return 503, {"error": f"the archive did not answer ({type(exc).__name__})"}

    @property
    def engine(self) -> Any:
        return self.opened.result().engine

    def ceasefire(self, query: p.Query, required: bool = False) -> str | None:
        value = p.text_param(query, "ceasefire", CEASEFIRE_ID, "a ceasefire id")
        if value is None and required:
            raise p.BadParameter("ceasefire", "required")
        if value is not None and self.ctx.registry.get(value) is None:
            raise p.BadParameter("ceasefire", f"no ceasefire {value!r} in the registry")
        return value

    def limit(self, query: p.Query, default: int) -> int:
        return p.int_param(query, "limit", default, 1, self.most) or default

    async def incidents(self, query: p.Query) -> Answer:
        p.check_known(query, ("ceasefire", "since", "until", "sector", "status", "min_severity", "limit", "cursor"))
        for sector in query.get("sector", []):
            p.text_param({"sector": [sector]}, "sector", SECTOR, "a sector name (1 to 64 characters)")
        q = queries.IncidentQuery(
            ceasefire=self.ceasefire(query),
            since=p.time_param(query, "since"),
            until=p.time_param(query, "until"),
            sectors=[s for s in query.get("sector", []) if s],
            statuses=p.choices(query, "status", STATUSES),
            min_severity=p.severity_param(query, "min_severity"),
            limit=self.limit(query, 100),
            cursor=p.one(query, "cursor"),
        )
        p.window(q.since, q.until)
        if q.cursor is not None:
            queries.decode_cursor(q.cursor)
        page = await asyncio.to_thread(queries.incidents, self.engine, q)
        return 200, {"ceasefire": q.ceasefire, "incidents": page.items, "next_cursor": page.cursor}

    async def incident(self, query: p.Query, incident_id: str) -> Answer:
        p.check_known(query, ("version",))
        version = p.int_param(query, "version", None, 1, 1_000_000_000)
        if not is_report_id(incident_id):  # incident ids are made like report ids
            raise p.BadParameter("incident_id", "not an incident id")
        found = await asyncio.to_thread(queries.incident, self.engine, incident_id, version)
        if found is None:
            what = f"version {version} of incident" if version else "incident"
            return 404, {"error": f"no {what} {incident_id} in the archive"}
        return 200, found

    async def report(self, query: p.Query, source: str, report_id: str) -> Answer:
        p.check_known(query, ())
        if not is_source_id(source):
            raise p.BadParameter("source", "not a source id a report could have")
        if not is_report_id(report_id):
            raise p.BadParameter("report_id", f"not a report id a report could have ({REPORT_ID_PATTERN})")
        spelled = spelling(self.ctx.sources, source)
        found = await asyncio.to_thread(queries.report, self.engine, spelled, report_id)
        if found is None:
            return 404, {"error": f"no record names report {report_id} of source {spelled}"}
        return 200, found

    async def alerts(self, query: p.Query) -> Answer:
        p.check_known(query, ("firing", "ceasefire", "limit"))
        found = await asyncio.to_thread(
            queries.alerts, self.engine, p.bool_param(query, "firing"), self.ceasefire(query), self.limit(query, 100)
        )
        return 200, {"alerts": found}

    async def fragility(self, query: p.Query) -> Answer:
        p.check_known(query, ("ceasefire", "since", "until", "kind", "limit"))
        chosen = self.ceasefire(query, required=True) or ""
        since, until = p.time_param(query, "since"), p.time_param(query, "until")
        p.window(since, until)
        kind = (p.choices(query, "kind", FRAGILITY_KINDS) or ["grid"])[-1]
        points = await asyncio.to_thread(
            queries.fragility, self.engine, chosen, since, until, kind, self.limit(query, self.most)
        )
        return 200, {"ceasefire": chosen, "kind": kind, "points": points}


def install(app: faust.App, ctx: Context, opened: asyncio.Future[ArchiveWriter]) -> ReadApi:
    api = ReadApi(ctx, opened)
    spec = yaml.safe_load(OPENAPI.read_text())

    async def reply(web: View, route: Callable[..., Awaitable[Answer]], *args: Any) -> Response:
        status, body = await api.answer(route, *args)
        return web.json(body, status=status)

    @app.page("/incidents")
    async def list_incidents(web: View, request: Request) -> Response:
        return await reply(web, api.incidents, _query(request))

    # Path patterns take any character, none included: an id no report could have is a 400 with a
    # reason from the route, never the router's plain-text 404.
    @app.page("/incidents/{incident_id:[\\s\\S]*}")
    async def get_incident(web: View, request: Request, incident_id: str) -> Response:
        return await reply(web, api.incident, _query(request), incident_id)

    @app.page("/reports/{source:[\\s\\S]*}/{report_id:[^/]*}")
    async def report_status(web: View, request: Request, source: str, report_id: str) -> Response:
        return await reply(web, api.report, _query(request), source, report_id)

    @app.page("/alerts")
    async def list_alerts(web: View, request: Request) -> Response:
        return await reply(web, api.alerts, _query(request))

    @app.page("/fragility")
    async def fragility_series(web: View, request: Request) -> Response:
        return await reply(web, api.fragility, _query(request))

    @app.page("/openapi.json")
    async def openapi(web: View, request: Request) -> Response:
        return web.json(spec)

    return api

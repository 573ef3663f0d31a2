"""Read API on the Faust web server: incidents held in correlation state.

- `GET /incidents?ceasefire=ID[&since=RFC3339][&status=S…]` is routed to the worker that owns the
  ceasefire's partition of the accepted topic (Faust's topic router).
- `GET /incidents/{incident_id}`: an id does not say which partition holds it, so a worker that does
  not hold it asks the other workers it knows from the group assignment (`?local=1` stops the fan-out).
Only incidents still in state are served (window + allowed lateness behind the watermark); the
compacted `ceasefire.incidents.v1` topic is the archive.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View
from yarl import URL

from schemas.incident import Incident

if TYPE_CHECKING:
    from services.correlate.agent import CorrelateStage


def select(
    incidents: list[Incident], since: datetime | None, statuses: set[str]
) -> list[dict[str, Any]]:
    """Filter (last observed at or after `since`, status in `statuses`) and order newest first."""
    chosen = [
        i
        for i in incidents
        if (since is None or i.last_observed_at >= since) and (not statuses or i.status in statuses)
    ]
    chosen.sort(key=lambda i: (i.last_observed_at, i.incident_id), reverse=True)
    return [i.model_dump(mode="json") for i in chosen]


def _since(request: Request) -> datetime | None:
    raw = request.query.get("since")
    if not raw:
        return None
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("since must carry a timezone")
    return parsed


def install(app: faust.App, stage: CorrelateStage, accepted: faust.TopicT) -> None:
    @app.page("/incidents")
    @app.topic_route(topic=accepted, query_param="ceasefire")
    async def list_incidents(web: View, request: Request) -> Response:
        ceasefire_id = request.query["ceasefire"]
        try:
            since = _since(request)
        except ValueError as exc:
            return web.json({"error": f"bad since: {exc}"}, status=400)
        statuses = set(request.query.getall("status", []))
        correlator = stage.correlators.get(ceasefire_id)
        held = list(correlator.incidents()) if correlator else []
        return web.json({"ceasefire": ceasefire_id, "incidents": select(held, since, statuses)})

    @app.page("/incidents/{incident_id}")
    async def get_incident(web: View, request: Request, incident_id: str) -> Response:
        for correlator in stage.correlators.values():
            for incident in correlator.incidents():
                if incident.incident_id == incident_id:
                    return web.json(incident.model_dump(mode="json"))
        if request.query.get("local") != "1":
            found = await _ask_others(app, incident_id)
            if found is not None:
                return web.json(found)
        return web.json({"error": f"no incident {incident_id} in state"}, status=404)


async def _ask_others(app: faust.App, incident_id: str) -> dict[str, Any] | None:
    me = URL(str(app.conf.canonical_url))
    hosts = {URL(host) for host in app.router.external_topics_metadata()} | {
        URL(host) for host in app.router.tables_metadata()
    }
    for host in sorted(hosts - {me}, key=str):
        url = host.with_path(f"/incidents/{incident_id}").with_query(local="1")
        try:
            async with app.http_client.get(url, timeout=2) as response:
                if response.status == 200:
                    return dict(await response.json())
        except (OSError, TimeoutError):
            continue
    return None

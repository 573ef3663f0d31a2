"""The forwarder as a task of a worker: wiring only (the work is in forwarder.py)."""

from __future__ import annotations

import faust

from services.notify.forwarder import AlertForwarder
from services.runtime.context import Context


def install(app: faust.App, ctx: Context) -> AlertForwarder | None:
    """Forward the alert stream to Alertmanager as a task of `app` when CEASEFIRE_ALERTMANAGER_URL is
    set; any number of workers may run it (forwarder.py says why that is safe)."""
    if ctx.settings.alertmanager_url is None:
        return None
    forwarder = AlertForwarder(ctx.settings, ctx.prometheus)

    @app.task
    async def forward_alerts() -> None:
        await forwarder.run()

    return forwarder

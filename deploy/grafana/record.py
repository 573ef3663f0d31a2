"""The dashboard's row "The record": panels and annotations that read the archive (PostgreSQL), not
Prometheus (docs/grafana-archive.md).

Prometheus holds what the workers exported while it was scraping them; the archive holds what happened,
at its own event times: where each incident is, what it is made of, the fragility series of a backlog
archived long after the fact, and every alert episode. Each query is raw SQL in Grafana's JSON shape
(`rawSql`, `format`, `rawQuery`, `editorMode`: grafana-foundation-sdk has no typed PostgreSQL query),
filtered by the dashboard's time range through Grafana's PostgreSQL macros and by its `ceasefire`
variable. tests/e2e/test_archive_panels.py runs every one against a real PostgreSQL the archive filled.
"""

from __future__ import annotations

from typing import Any, Literal

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import geomap, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    AnnotationTarget,
    DataSourceRef,
    DynamicConfigValue,
    ValueMap,
    ValueMappingResult,
)
from grafana_foundation_sdk.models.geomap import TooltipMode

from schemas.incident import GONE, Severity

ARCHIVE_UID = "ceasefire-archive"  # deploy/grafana/provisioning/datasources/archive.yml
ARCHIVE_TYPE = "grafana-postgresql-datasource"  # the core plugin's id in Grafana 11 (older alias: postgres)
ARCHIVE = DataSourceRef(type_val=ARCHIVE_TYPE, uid=ARCHIVE_UID)

# The `ceasefire` variable is Prometheus's multi-value picker with a custom "All" of `.*`. Grafana's
# `regex` format gives `name` (escaped), `(a|b)`, or that `.*` untouched: one anchored match covers all
# three, where an IN list could not take the `.*`.
PICKED = "~ '^${ceasefire:regex}$'"
EXISTING = "NOT IN ({})".format(", ".join(f"'{status}'" for status in sorted(GONE)))

STATUS_COLOURS = {"claimed": "yellow", "mutual": "orange", "corroborated": "red"}

Format = Literal["table", "time_series"]


class SqlQuery(cogvariants.Dataquery):
    """A PostgreSQL target as Grafana saves one written in its code editor."""

    def __init__(self, raw_sql: str, fmt: Format, ref_id: str) -> None:
        self.raw_sql = raw_sql
        self.fmt = fmt
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": ARCHIVE,
            "rawSql": self.raw_sql,
            "format": self.fmt,
            "rawQuery": True,
            "editorMode": "code",
        }


class Sql(cogbuilder.Builder[SqlQuery]):
    def __init__(self, raw_sql: str, fmt: Format = "table", ref_id: str = "A") -> None:
        self._internal = SqlQuery(raw_sql.strip(), fmt, ref_id)

    def build(self) -> SqlQuery:
        return self._internal


class SqlAnnotationTarget(AnnotationTarget):
    """An annotation's `target` is typed for Grafana's own annotation store; a SQL datasource reads
    the same target a panel would (time, timeend, text, tags columns)."""

    def __init__(self, query: SqlQuery) -> None:
        super().__init__()
        self.query = query

    def to_json(self) -> dict[str, object]:
        return self.query.to_json()


class SqlAnnotation(cogbuilder.Builder[AnnotationTarget]):
    def __init__(self, raw_sql: str) -> None:
        self._internal = SqlAnnotationTarget(SqlQuery(raw_sql.strip(), "table", "Anno"))

    def build(self) -> AnnotationTarget:
        return self._internal


def _range(column: str) -> str:
    """A casualty range as text: `2`, `1–3`, or nothing when no report gave a figure."""
    low, high = f"i.{column}_low", f"i.{column}_high"
    return (
        f"CASE WHEN {high} IS NULL THEN NULL WHEN {low} IS NOT DISTINCT FROM {high} THEN {high}::text"
        f" ELSE concat_ws('–', {low}, {high}) END AS {column}"
    )


# The SQL below is put together from this module's constants only: no value from outside reaches it
# but the macros and the variable Grafana expands.

# Incidents that still exist (neither merged nor withdrawn), last observed within the dashboard's range.
INCIDENTS_WHERE = f"""
WHERE i.status {EXISTING}
  AND $__timeFilter(i.last_observed_at)
  AND i.ceasefire_id {PICKED}"""

MAP_SQL = f"""
SELECT i.last_observed_at AS "time", i.incident_id AS incident, i.lat, i.lon, i.status, i.severity,
       i.report_count AS reports, i.radius_km
FROM incidents i{INCIDENTS_WHERE}
  AND i.lat IS NOT NULL AND i.lon IS NOT NULL
ORDER BY i.last_observed_at DESC
LIMIT 2000
"""  # noqa: S608 - built from this module's constants; Grafana fills in the rest

LATEST_SQL = f"""
SELECT i.last_observed_at AS "last observed", i.incident_id AS incident, i.status, i.severity,
       string_agg(DISTINCT m.source, ', ' ORDER BY m.source) AS sources,
       string_agg(DISTINCT m.sector, ', ' ORDER BY m.sector) AS sectors,
       i.report_count AS reports, {_range("killed")}, {_range("injured")}
FROM incidents i
LEFT JOIN incident_members m ON m.incident_id = i.incident_id{INCIDENTS_WHERE}
GROUP BY i.incident_id
ORDER BY i.last_observed_at DESC
LIMIT 100
"""  # noqa: S608 - built from this module's constants; Grafana fills in the rest

# `grid` points only: the fixed event-time grid readers plot (`change` points fall between them).
FRAGILITY_SQL = f"""
SELECT f.as_of AS "time", f.ceasefire_id AS metric, f.fragility_index AS value
FROM fragility f
WHERE f.kind = 'grid'
  AND $__timeFilter(f.as_of)
  AND f.ceasefire_id {PICKED}
ORDER BY 1
"""  # noqa: S608 - built from this module's constants; Grafana fills in the rest

# Episodes that overlap the range; one still firing is drawn up to the range's end.
EPISODES_SQL = f"""
SELECT e.starts_at AS "time", COALESCE(e.ends_at, $__timeTo()) AS timeend, e.summary AS text,
       concat_ws(',', e.alertname, e.severity, e.labels->>'sector') AS tags
FROM alert_episodes e
WHERE e.starts_at <= $__timeTo()
  AND (e.ends_at IS NULL OR e.ends_at >= $__timeFrom())
  AND e.ceasefire_id {PICKED}
ORDER BY e.starts_at
"""  # noqa: S608 - built from this module's constants; Grafana fills in the rest


def _status_colours() -> DynamicConfigValue:
    options = {
        status: ValueMappingResult(color=colour, index=n)
        for n, (status, colour) in enumerate(STATUS_COLOURS.items())
    }
    return DynamicConfigValue(id_val="mappings", value=[ValueMap(options=options)])


def _severity_names() -> DynamicConfigValue:
    options = {
        str(int(rung)): ValueMappingResult(text=f"{int(rung)} {rung.name.lower()}", index=n)
        for n, rung in enumerate(Severity)
    }
    return DynamicConfigValue(id_val="mappings", value=[ValueMap(options=options)])


def _markers() -> dict[str, Any]:
    """A markers layer: one circle per incident at its centre, coloured by status, sized by severity."""
    return {
        "showLegend": True,
        "style": {
            "color": {"field": "status", "fixed": "yellow"},
            "opacity": 0.7,
            "size": {"field": "severity", "fixed": 6, "min": 4, "max": 16},
            "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
        },
    }


def incident_map() -> geomap.Panel:
    centre = (
        common_builders.FrameGeometrySource()
        .mode(common.FrameGeometrySourceMode.COORDS)
        .latitude("lat")
        .longitude("lon")
    )
    layer = (
        common_builders.MapLayerOptions().type("markers").name("Incidents").config(_markers()).location(centre)
    ).tooltip(True)
    severity_scale = [DynamicConfigValue(id_val="min", value=1), DynamicConfigValue(id_val="max", value=5)]
    return (
        geomap.Panel()
        .title("Incidents on the map")
        .description(
            "Incidents that still exist (not merged or withdrawn) last observed in the time range, at the "
            "precision-weighted centre of their reports: colour by status, size by severity (the archive)."
        )
        .datasource(ARCHIVE)
        .height(12)
        .span(12)
        .view(geomap.MapViewConfig().id("fit").all_layers(True).zoom(7))
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_scale(True))
        .tooltip(geomap.TooltipOptions().mode(TooltipMode.DETAILS))
        .basemap(common_builders.MapLayerOptions().type("default").name("Basemap").config({}))
        .layers([layer])
        .override_by_name("status", [_status_colours()])
        .override_by_name("severity", severity_scale)
        .with_target(Sql(MAP_SQL))
    )


def latest_incidents() -> table.Panel:
    return (
        table.Panel()
        .title("Latest incidents")
        .description(
            "The newest incidents in the time range with their sources, sectors, severity and casualty "
            "range (lowest–highest figure a report gave; never a sum), from the archive."
        )
        .datasource(ARCHIVE)
        .height(12)
        .span(12)
        .show_header(True)
        .override_by_name("status", [_status_colours()])
        .override_by_name("severity", [_severity_names()])
        .with_target(Sql(LATEST_SQL))
    )


def fragility_history() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Fragility history (archive)")
        .description(
            "The index on its event-time grid as the archive recorded it: a backlog processed late lands at "
            "its own times, so periods Prometheus never scraped (an outage, a backfill) are drawn too."
        )
        .datasource(ARCHIVE)
        .unit("none")
        .min(0)
        .max(100)
        .height(8)
        .span(24)
        .line_width(1)
        .fill_opacity(10)
        .with_target(Sql(FRAGILITY_SQL, "time_series"))
    )


def alert_episodes() -> dash.AnnotationQuery:
    """Every firing episode as a range annotation on the time series (tags: rule, severity, sector)."""
    return (
        dash.AnnotationQuery()
        .name("Alert episodes")
        .datasource(ARCHIVE)
        .enable(True)
        .icon_color("red")
        .target(SqlAnnotation(EPISODES_SQL))
    )


def record_row() -> list[dash.Panel | dash.Row]:
    return [dash.Row("The record"), incident_map(), latest_incidents(), fragility_history()]

"""Panel, variable and layout helpers: every nodemesh dashboard is built from these few.

Theory of operation: a dashboard module lists `Section`s (a titled row of panels, each with a
width); `layout` turns them into grafanalib objects with grid positions, a row header above each
section, and panels flowing left to right, wrapping at Grafana's 24 columns. Panels read from the
`$datasource` variable, so an imported dashboard works with whatever Prometheus the operator picks.
Keeping the set of options small (title, description, unit, targets, stacking) is deliberate:
the round-trip check in `loader.py` has to understand every field these helpers set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import attr
from grafanalib.core import (
    Dashboard,
    GridPos,
    RowPanel,
    Stat,
    Target,
    Template,
    Templating,
    TimeSeries,
)

GRID_WIDTH = 24
SCHEMA_VERSION = 39  # Grafana 10.x; timeseries and stat panels as grafanalib writes them
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
HEIGHTS = {"stat": 4, "timeseries": 8}
REF_IDS = "ABCDEFGHIJ"


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL expression and how its series are named in the legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True, slots=True)
class Section:
    """A row header and the panels under it, as (panel, width in grid columns) pairs."""

    title: str
    panels: Sequence[tuple[TimeSeries | Stat, int]]


def _targets(queries: Sequence[Query]) -> list[Target]:
    if not 1 <= len(queries) <= len(REF_IDS):
        raise ValueError(f"a panel takes 1 to {len(REF_IDS)} queries, got {len(queries)}")
    return [
        Target(expr=q.expr, legendFormat=q.legend, refId=ref, datasource=DATASOURCE)
        for q, ref in zip(queries, REF_IDS, strict=False)
    ]


def timeseries(
    title: str, *queries: Query, unit: str = "short", description: str = "", stack: bool = False
) -> TimeSeries:
    """A time series panel; `stack` stacks series (for parts of one whole, like bytes by peer)."""
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        unit=unit,
        stacking={"mode": "normal", "group": "A"} if stack else {},
        fillOpacity=20 if stack else 0,
        legendDisplayMode="table",
        legendPlacement="right",
        legendCalcs=["mean", "max"],
    )


def stat(title: str, query: Query, *, unit: str = "short", description: str = "") -> Stat:
    """A single-number panel showing the query's last value."""
    return Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets([query]),
        format=unit,
        reduceCalc="lastNotNull",
        graphMode="area",
    )


def datasource_variable() -> Template:
    return Template(name="datasource", label="Data source", query="prometheus", type="datasource")


def label_variable(name: str, label: str, query: str) -> Template:
    """A multi-value variable from `label_values(...)`, "All" meaning the regex `.*`."""
    return Template(
        name=name,
        label=label,
        query=query,
        dataSource=DATASOURCE,
        includeAll=True,
        multi=True,
        allValue=".*",
        default="$__all",
        refresh=2,  # on time range change, so new workloads appear
    )


def layout(sections: Sequence[Section]) -> list:
    """Row headers and panels with grid positions, top to bottom, left to right."""
    placed, y = [], 0
    for section in sections:
        placed.append(RowPanel(title=section.title, gridPos=GridPos(h=1, w=GRID_WIDTH, x=0, y=y)))
        y, x, row_height = y + 1, 0, 0
        for panel, width in section.panels:
            if not 1 <= width <= GRID_WIDTH:
                raise ValueError(f"panel {panel.title!r}: width {width} is not in 1..{GRID_WIDTH}")
            if x + width > GRID_WIDTH:
                y, x, row_height = y + row_height, 0, 0
            height = HEIGHTS[panel.to_json_data()["type"]]
            placed.append(attr.evolve(panel, gridPos=GridPos(h=height, w=width, x=x, y=y)))
            x, row_height = x + width, max(row_height, height)
        y += row_height
    return placed


def dashboard(
    uid: str, title: str, description: str, sections: Sequence[Section], variables=()
) -> Dashboard:
    """A nodemesh dashboard: tagged, on the `$datasource` variable, panels numbered 1..n."""
    return Dashboard(
        uid=uid,
        title=title,
        description=description,
        tags=["nodemesh"],
        panels=layout(sections),
        templating=Templating(list=[datasource_variable(), *variables]),
        schemaVersion=SCHEMA_VERSION,
        refresh="30s",
        timezone="browser",
    ).auto_panel_ids()

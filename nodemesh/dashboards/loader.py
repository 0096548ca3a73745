"""Dashboard JSON back into grafanalib's model, for the check that a file is a valid dashboard.

Theory of operation: grafanalib builds JSON from model objects but has no way back, so this
module supplies one for the panel types nodemesh uses (row, timeseries, stat). For each model
class a table maps constructor arguments to JSON paths; `load` reads those paths, builds the
objects (running grafanalib's attrs validators), and `check` renders the result again and
compares it with the input. Equal JSON means every field of the file is one grafanalib's model
produces from valid arguments; a field the model does not know, a missing one, or a value its
validators refuse raises `DashboardLoadError` naming the JSON path.

Why not grafana-foundation-sdk: it can unmarshal dashboards, but it would be a second dashboard
library next to the one that builds them, and its unmarshalling copies fields without checking
for unknown ones, which is the check wanted here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from grafanalib.core import (
    Annotations,
    Dashboard,
    GridPos,
    Repeat,
    RowPanel,
    Stat,
    Target,
    Template,
    Templating,
    Time,
    TimePicker,
    TimeSeries,
)

Table = tuple[tuple[str, str], ...]  # (constructor argument, dotted JSON path)


def _same(*names: str) -> Table:
    """Arguments that sit at the top of the JSON object under their own name."""
    return tuple((name, name) for name in names)


_DEFAULTS, _CUSTOM = "fieldConfig.defaults", "fieldConfig.defaults.custom"
_PANEL_NAMES = (
    "description", "editable", "error", "height", "hideTimeOverride", "id", "interval", "links",
    "maxDataPoints", "minSpan", "span", "timeFrom", "timeShift", "title", "transparent",
    "transformations", "cacheTimeout",
)  # fmt: skip
_PANEL: Table = (
    *_same(*_PANEL_NAMES),
    ("dataSource", "datasource"),
    ("thresholds", f"{_DEFAULTS}.thresholds.steps"),
    ("thresholdType", f"{_DEFAULTS}.thresholds.mode"),
)
_CUSTOM_NAMES = (
    "axisPlacement", "axisLabel", "barAlignment", "drawStyle", "fillOpacity", "gradientMode",
    "lineInterpolation", "lineWidth", "pointSize", "spanNulls", "showPoints", "stacking",
    "axisSoftMin", "axisSoftMax",
)  # fmt: skip
_TIMESERIES: Table = (
    *((name, f"{_CUSTOM}.{name}") for name in _CUSTOM_NAMES),
    ("colorMode", f"{_DEFAULTS}.color.mode"),
    ("legendDisplayMode", "options.legend.displayMode"),
    ("legendPlacement", "options.legend.placement"),
    ("legendCalcs", "options.legend.calcs"),
    ("mappings", f"{_DEFAULTS}.mappings"),
    ("overrides", "fieldConfig.overrides"),
    ("scaleDistributionType", f"{_CUSTOM}.scaleDistribution.type"),
    ("scaleDistributionLog", f"{_CUSTOM}.scaleDistribution.log"),
    ("tooltipMode", "options.tooltip.mode"),
    ("tooltipSort", "options.tooltip.sort"),
    ("unit", f"{_DEFAULTS}.unit"),
    ("thresholdsStyleMode", f"{_CUSTOM}.thresholdsStyle.mode"),
    ("valueMin", f"{_DEFAULTS}.min"),
    ("valueMax", f"{_DEFAULTS}.max"),
    ("valueDecimals", f"{_DEFAULTS}.decimals"),
)
_STAT: Table = (
    ("alignment", "options.justifyMode"),
    ("color", f"{_DEFAULTS}.color"),
    ("colorMode", "options.colorMode"),
    ("decimals", f"{_DEFAULTS}.decimals"),
    ("format", f"{_DEFAULTS}.unit"),
    ("graphMode", "options.graphMode"),
    ("mappings", f"{_DEFAULTS}.mappings"),
    ("noValue", f"{_DEFAULTS}.noValue"),
    ("orientation", "options.orientation"),
    ("overrides", "fieldConfig.overrides"),
    ("reduceCalc", "options.reduceOptions.calcs.0"),
    ("fields", "options.reduceOptions.fields"),
    ("textMode", "options.textMode"),
)
_ROW: Table = (("collapsed", "collapsed"),)
_TARGET: Table = _same(
    "expr", "format", "hide", "legendFormat", "interval", "intervalFactor", "metric", "refId",
    "step", "target", "instant", "datasource",
)  # fmt: skip
_TEMPLATE_NAMES = (
    "name", "query", "label", "allValue", "includeAll", "multi", "options", "regex", "useTags",
    "tagsQuery", "tagValuesQuery", "refresh", "type", "hide", "sort", "auto",
)  # fmt: skip
_TEMPLATE: Table = (
    *_same(*_TEMPLATE_NAMES),
    ("default", "current.value"),
    ("dataSource", "datasource"),
    ("autoCount", "auto_count"),
    ("autoMin", "auto_min"),
)
_DASHBOARD_NAMES = (
    "title", "description", "editable", "gnetId", "graphTooltip", "hideControls", "id", "links",
    "refresh", "schemaVersion", "sharedCrosshair", "style", "tags", "timezone", "version", "uid",
)  # fmt: skip
_DASHBOARD: Table = (*_same(*_DASHBOARD_NAMES), ("inputs", "__inputs"))
PANELS: Mapping[str, tuple[type, Table]] = {
    "row": (RowPanel, _PANEL + _ROW),
    "timeseries": (TimeSeries, _PANEL + _TIMESERIES),
    "stat": (Stat, _PANEL + _STAT),
}


class DashboardLoadError(ValueError):
    """The JSON is not something grafanalib's model produces; the message names the path."""


def _get(data: Any, dotted: str, where: str) -> Any:
    for key in dotted.split("."):
        if isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        elif isinstance(data, dict) and key in data:
            data = data[key]
        else:
            raise DashboardLoadError(f"{where}: missing {dotted!r}; not a grafanalib dashboard?")
    return data


def _pick(data: dict, table: Table, where: str) -> dict[str, Any]:
    return {arg: _get(data, path, where) for arg, path in table}


def _build(cls: type, kwargs: dict[str, Any], where: str) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise DashboardLoadError(f"{where}: grafanalib refused {cls.__name__}: {exc}") from exc


def load_target(data: dict, where: str) -> Target:
    return _build(Target, _pick(data, _TARGET, where), where)


def load_panel(data: dict, where: str = "panel") -> Any:
    kind = data.get("type")
    if kind not in PANELS:
        known = ", ".join(sorted(PANELS))
        raise DashboardLoadError(f"{where}: panel type {kind!r} unknown; loader.PANELS has {known}")
    cls, table = PANELS[kind]
    kwargs = _pick(data, table, where)
    kwargs["gridPos"] = _build(GridPos, _get(data, "gridPos", where), f"{where}.gridPos")
    kwargs["targets"] = [
        load_target(t, f"{where}.targets[{i}]") for i, t in enumerate(data.get("targets", []))
    ]
    repeat = {"variable": data.get("repeat"), "direction": data.get("repeatDirection")}
    kwargs["repeat"] = _build(Repeat, repeat | {"maxPerRow": data.get("maxPerRow")}, where)
    if kind == "row":
        kwargs["panels"] = [load_panel(p, f"{where}.panels[{i}]") for i, p in _each(data, "panels")]
    return _build(cls, kwargs, where)


def _each(data: dict, key: str) -> Iterator[tuple[int, Any]]:
    return enumerate(data.get(key, []))


def load_template(data: dict, where: str) -> Template:
    if data.get("type") == "custom":
        raise DashboardLoadError(f"{where}: custom variables are not supported by the loader")
    return _build(Template, _pick(data, _TEMPLATE, where), where)


def load(data: dict) -> Dashboard:
    """The grafanalib Dashboard that renders as `data` (DashboardLoadError if there is none)."""
    kwargs = _pick(data, _DASHBOARD, "dashboard")
    if data.get("rows"):
        raise DashboardLoadError("dashboard: legacy 'rows' are not supported; use row panels")
    kwargs["annotations"] = Annotations(list=_get(data, "annotations.list", "dashboard"))
    kwargs["panels"] = [load_panel(p, f"panels[{i}]") for i, p in _each(data, "panels")]
    variables = _get(data, "templating.list", "dashboard")
    kwargs["templating"] = Templating(
        list=[load_template(v, f"templating.list[{i}]") for i, v in enumerate(variables)]
    )
    time = _get(data, "time", "dashboard")
    kwargs["time"] = Time(start=time.get("from"), end=time.get("to"))
    picker = _get(data, "timepicker", "dashboard")
    kwargs["timePicker"] = _build(
        TimePicker,
        {
            "refreshIntervals": picker.get("refresh_intervals"),
            "timeOptions": picker.get("time_options"),
            "nowDelay": picker.get("nowDelay"),
            "hidden": picker.get("hidden", False),
        },
        "timepicker",
    )
    return _build(Dashboard, kwargs, "dashboard")


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The JSON path where `a` and `b` first differ, or None if they are equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            if key not in a or key not in b:
                return f"{path}.{key}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        diffs = (
            first_difference(x, y, f"{path}[{i}]")
            for i, (x, y) in enumerate(zip(a, b, strict=True))
        )
        return next((d for d in diffs if d), None)
    return None if a == b else path or "."


def check(data: dict, to_data) -> Dashboard:
    """Load `data` and render it again with `to_data`; DashboardLoadError unless it is the same."""
    model = load(data)
    where = first_difference(data, to_data(model))
    if where is not None:
        raise DashboardLoadError(
            f"{where}: the file has a field or value grafanalib's model does not produce"
        )
    return model

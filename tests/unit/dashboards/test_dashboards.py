"""The checked-in dashboards: current, loadable, and reading only series the code exports."""

import json
import re

import pytest

from nodemesh.dashboards import catalogue
from nodemesh.dashboards.evaluate import queries
from nodemesh.dashboards.loader import check
from nodemesh.dashboards.promql import analyze
from nodemesh.dashboards.render import DASHBOARDS, DEFAULT_DIR, rendered, stale, to_data

SERIES = catalogue.build()
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def checked_in() -> dict[str, dict]:
    return {
        stem: json.loads((DEFAULT_DIR / f"{stem}.json").read_text(encoding="utf-8"))
        for stem in DASHBOARDS
    }


def all_queries():
    return [q for name, data in checked_in().items() for q in queries(name, data)]


def problems(expr: str, legend: str = "", label: str | None = None) -> list[str]:
    """What is wrong with one query against the exported series (empty when nothing is)."""
    found, labels = [], set()
    analysis = analyze(expr)
    for selector in analysis.selectors:
        series = SERIES.get(selector.metric)
        if series is None:
            found.append(f"unknown metric {selector.metric}")
            continue
        labels |= series.labels
        found += [
            f"{selector.metric} has no label {m.label}"
            for m in selector.matchers
            if m.label not in series.labels
        ]
    found += [f"grouping by unknown label {g}" for g in sorted(analysis.grouping - labels)]
    kept = analysis.grouping or labels
    found += [f"legend uses {x}, not kept" for x in LEGEND_LABEL.findall(legend) if x not in kept]
    if label is not None and label not in labels:
        found.append(f"variable lists unknown label {label}")
    if not analysis.selectors:
        found.append("reads no series")
    return found


def test_checked_in_json_is_what_the_code_generates():
    assert stale() == [], "run: python -m nodemesh.dashboards"
    assert sorted(p.name for p in DEFAULT_DIR.glob("*.json")) == sorted(rendered())


@pytest.mark.parametrize("stem", sorted(DASHBOARDS))
def test_each_file_loads_into_grafanalibs_model(stem):
    data = checked_in()[stem]
    model = check(data, to_data)
    assert model.uid == data["uid"] and len(model.panels) == len(data["panels"])


def test_the_checker_catches_renamed_metrics_and_labels():
    assert problems("rate(istio_request_total[1m])") == ["unknown metric istio_request_total"]
    assert problems('istio_requests_total{code="500"}') == [
        "istio_requests_total has no label code"
    ]
    assert problems("sum by (pod) (nodemesh_agent_captured_pods)") == [
        "grouping by unknown label pod"
    ]
    assert problems("sum by (kind) (pilot_xds)", "{{type}}") == ["legend uses type, not kept"]
    assert problems("vector(1)") == ["reads no series"]


@pytest.mark.parametrize("query", all_queries(), ids=lambda q: f"{q.dashboard}:{q.panel}:{q.ref}")
def test_every_query_uses_exported_metrics_and_labels(query):
    is_variable = query.panel.startswith("variable ")
    label = query.ref if is_variable else None
    assert problems(query.expr, query.legend, label) == []


def families_in(stem: str) -> set[str]:
    exprs = [q.expr for q in queries(stem, checked_in()[stem])]
    return {SERIES[m].family for e in exprs for m in analyze(e).metrics}


@pytest.mark.parametrize(
    ("stem", "component"),
    [
        ("node-agent", catalogue.Component.AGENT),
        ("waypoint", catalogue.Component.WAYPOINT),
        ("control-plane", catalogue.Component.CONTROLLER),
    ],
)
def test_component_dashboards_show_every_metric_of_their_component(stem, component):
    exported = {s.family for s in SERIES.values() if component in s.components}
    assert exported - families_in(stem) == set()


def test_mesh_overview_has_the_golden_signals_per_service():
    exprs = [q.expr for q in queries("mesh-overview", checked_in()["mesh-overview"])]
    per_service = [e for e in exprs if "destination_service" in analyze(e).grouping]
    for q in ("0.5", "0.9", "0.99"):
        assert any(e.startswith(f"histogram_quantile({q},") for e in per_service)
    assert any('response_code!~"5.."' in e for e in per_service)
    tcp = {m for e in per_service for m in analyze(e).metrics if m.startswith("istio_tcp")}
    assert tcp == {
        "istio_tcp_connections_opened_total",
        "istio_tcp_received_bytes_total",
        "istio_tcp_sent_bytes_total",
    }


@pytest.mark.parametrize("stem", sorted(DASHBOARDS))
def test_panels_fit_the_grid_without_overlapping(stem):
    cells = set()
    for panel in checked_in()[stem]["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


def test_uids_and_panel_ids_are_unique():
    data = checked_in().values()
    assert len({d["uid"] for d in data}) == len(DASHBOARDS)
    for d in data:
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids))

"""Every query of a dashboard, with Grafana's variables filled in, run through a given function.

Theory of operation: `queries` walks a dashboard's JSON and yields each panel target and each
`label_values(...)` variable as a `PanelQuery`. `substitute` replaces Grafana's variables the way
Grafana would for "All" (`$namespace` -> `.*`, `$__rate_interval` -> `1m`). `evaluate` hands each
resulting PromQL string to a caller-supplied `QueryRunner` (the I/O lives with the caller, e.g. an
HTTP client for a test Prometheus) and reports each query that errs or returns no series.

Some queries are empty in a healthy mesh by design: they count failures (5xx, response flags
other than "-", denials, NACKs, refused CSRs, label overflow) or traffic a mesh may not carry
(gRPC status). `may_be_empty` recognises them from the query's own selectors, so a report lists
only the queries that should have had data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from nodemesh.dashboards.promql import Selector, analyze

QueryRunner = Callable[[str], Sequence[object]]  # PromQL in, result series (or samples) out

GRAFANA_DEFAULTS: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
}
ALL = ".*"  # what a multi-value variable with "All" selected expands to (its allValue)
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<selector>.*\S)\s*,\s*)?(?P<label>\w+)\s*\)\s*$"
)
RARE_METRICS = frozenset(
    {
        "pilot_total_xds_rejects_total",
        "nodemesh_controller_csr_refused_total",
        "nodemesh_waypoint_label_overflow_total",
    }
)


class UnknownVariable(LookupError):
    """A query uses a Grafana variable that neither the dashboard nor the defaults define."""


@dataclass(frozen=True, slots=True)
class PanelQuery:
    dashboard: str
    panel: str  # panel title, or "variable <name>"
    ref: str  # the target's refId, or the label a variable lists
    expr: str  # PromQL as written in the dashboard, variables unexpanded
    legend: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    query: PanelQuery
    evaluated: str  # the PromQL actually run
    problem: str  # "no data", or the runner's error


def _panels(panels: Sequence[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def variable_selector(query: str) -> tuple[str | None, str]:
    """(selector or None, label) of `label_values([selector,] label)`; ValueError otherwise."""
    m = _LABEL_VALUES.match(query)
    if m is None:
        raise ValueError(f"variable query {query!r} is not label_values([selector,] label)")
    return m.group("selector"), m.group("label")


def queries(name: str, dashboard: dict) -> Iterator[PanelQuery]:
    """Every panel target and every query variable of `dashboard` (its JSON data)."""
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            yield PanelQuery(
                name, panel["title"], target["refId"], target["expr"], target["legendFormat"]
            )
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            selector, label = variable_selector(variable["query"])
            if selector is not None:
                yield PanelQuery(name, f"variable {variable['name']}", label, selector)


def variable_values(dashboard: dict) -> dict[str, str]:
    """Grafana's built-ins plus "All" (`.*`) for each of the dashboard's query variables."""
    values = dict(GRAFANA_DEFAULTS)
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            values[variable["name"]] = variable.get("allValue") or ALL
    return values


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with `$x`, `${x}` and `[[x]]` replaced from `values` (UnknownVariable if absent)."""

    def one(m: re.Match) -> str:
        name = next(g for g in m.groups() if g)
        if name not in values:
            raise UnknownVariable(f"{name!r} in {expr!r}: define it on the dashboard or pass it")
        return values[name]

    return _VARIABLE.sub(one, expr)


def _rare(selector: Selector) -> bool:
    if selector.metric in RARE_METRICS:
        return True
    for m in selector.matchers:
        if m.label == "response_flags" and (m.op, m.value) != ("=", "-"):
            return True
        if m.label == "response_code" and m.op in ("=", "=~") and m.value.startswith("5"):
            return True
        if (m.label, m.op, m.value) in (
            ("decision", "=", "deny"),
            ("grpc_response_status", "!=", ""),
        ):
            return True
    return False


def may_be_empty(expr: str) -> bool:
    """Whether `expr` counts what a healthy mesh may never see (failures, denials, gRPC)."""
    return any(_rare(s) for s in analyze(expr).selectors)


def evaluate(
    dashboards: Mapping[str, dict],
    run: QueryRunner,
    *,
    allow_empty: Callable[[str], bool] = may_be_empty,
    values: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Run every query of every dashboard; the ones that failed or returned no data.

    `values` overrides variable values (e.g. `{"namespace": "demo"}`) for all dashboards.
    """
    findings = []
    for name, dashboard in dashboards.items():
        chosen = variable_values(dashboard) | dict(values or {})
        for query in queries(name, dashboard):
            expr = substitute(query.expr, chosen)
            try:
                result = run(expr)
            except Exception as exc:  # the runner's own errors, reported, not raised
                findings.append(Finding(query, expr, f"{type(exc).__name__}: {exc}"))
                continue
            if not result and not allow_empty(query.expr):
                findings.append(Finding(query, expr, "no data"))
    return findings

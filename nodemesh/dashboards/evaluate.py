"""Every query of a dashboard, with Grafana's variables filled in, run through a given function.

Theory of operation: `queries` walks a dashboard's JSON and yields each panel target and each
`label_values(...)` variable as a `PanelQuery`. `substitute` replaces Grafana's variables the way
Grafana would for "All" (`$namespace` -> `.*`, `$__rate_interval` -> `1m`). `evaluate` hands each
resulting PromQL string to a caller-supplied `QueryRunner` (the I/O lives with the caller, e.g. an
HTTP client for a test Prometheus) and reports each query that errs or returns no series.

A panel drawn as `(X) or vector(0)` always has a number, so `evaluate` runs X alone: "has data"
then means a real series, not the fallback. Every query must have data, except those that
`ALLOWED_EMPTY` names: each entry is a series a live mesh cannot be made to produce today (by
metric name, optionally narrowed to one label value), with the reason. Failures (5xx, response
flags, denials, NACKs, refused CSRs) are not excused: a test must cause them.
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


@dataclass(frozen=True, slots=True)
class AllowedEmpty:
    """A series no live mesh can be made to produce, and why; see `ALLOWED_EMPTY`.

    It covers a query selector for `metric` and, when `label` is set, only one whose positive
    matcher (`=` or `=~`) on `label` mentions `value` (e.g. `response_flags=~".*UO.*"`).
    """

    metric: str
    reason: str
    label: str = ""
    value: str = ""

    def covers(self, selector: Selector) -> bool:
        if selector.metric != self.metric:
            return False
        return not self.label or any(
            m.label == self.label and m.op in ("=", "=~") and self.value in m.value
            for m in selector.matchers
        )


ALLOWED_EMPTY: tuple[AllowedEmpty, ...] = (
    AllowedEmpty(
        "pilot_total_xds_rejects_total",
        "a component NACKs a resource it cannot apply; the controller validates objects with the "
        "same rules the agents and waypoints compile them by (nodemesh.manifests, the waypoint's "
        "route compiler), so one cluster running one version has nothing to NACK: rejects come "
        "from version skew in an upgrade. NACK handling is tested in tests/unit/xds and "
        "tests/inprocess/test_controller_config.py",
    ),
)


def allowed_empty(
    expr: str, allowed: Sequence[AllowedEmpty] = ALLOWED_EMPTY
) -> AllowedEmpty | None:
    """The entry of `allowed` that excuses `expr` for having no data, or None."""
    for selector in analyze(expr).selectors:
        for entry in allowed:
            if entry.covers(selector):
                return entry
    return None


def may_be_empty(expr: str, allowed: Sequence[AllowedEmpty] = ALLOWED_EMPTY) -> bool:
    """Whether `expr` reads a series that `allowed` (by default `ALLOWED_EMPTY`) excuses."""
    return allowed_empty(expr, allowed) is not None


_ZERO_FALLBACK = " or vector(0)"


def without_zero_fallback(expr: str) -> str:
    """X of `(X) or vector(0)` (as `exprs.or_zero` writes it); any other `expr` unchanged."""
    inner = expr.strip()
    if not (inner.endswith(_ZERO_FALLBACK) and inner.startswith("(")):
        return expr
    inner = inner[: -len(_ZERO_FALLBACK)].rstrip()
    if not inner.endswith(")"):
        return expr
    depth = 0
    for i, char in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and i < len(inner) - 1:
            return expr  # "(a) or (b) or vector(0)": the first parenthesis closes early
    return inner[1:-1]


def evaluate(
    dashboards: Mapping[str, dict],
    run: QueryRunner,
    *,
    allow_empty: Callable[[str], bool] = may_be_empty,
    values: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Run every query of every dashboard; the ones that failed or returned no data.

    `values` overrides variable values (e.g. `{"namespace": "demo"}`) for all dashboards. A
    `(X) or vector(0)` query is run as X (`without_zero_fallback`).
    """
    findings = []
    for name, dashboard in dashboards.items():
        chosen = variable_values(dashboard) | dict(values or {})
        for query in queries(name, dashboard):
            expr = without_zero_fallback(substitute(query.expr, chosen))
            try:
                result = run(expr)
            except Exception as exc:  # the runner's own errors, reported, not raised
                findings.append(Finding(query, expr, f"{type(exc).__name__}: {exc}"))
                continue
            if not result and not allow_empty(query.expr):
                findings.append(Finding(query, expr, "no data"))
    return findings

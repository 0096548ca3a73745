import pytest

from nodemesh.dashboards import waypoint
from nodemesh.dashboards.evaluate import (
    ALLOWED_EMPTY,
    AllowedEmpty,
    Finding,
    UnknownVariable,
    allowed_empty,
    evaluate,
    may_be_empty,
    queries,
    substitute,
    variable_selector,
    variable_values,
    without_zero_fallback,
)
from nodemesh.dashboards.render import to_data

WAYPOINT = to_data(waypoint.build())


def test_substitute_all_three_spellings():
    values = {"ns": "demo", "__rate_interval": "1m"}
    out = substitute('x{a=~"$ns",b="${ns}",c="[[ns]]"}[$__rate_interval]', values)
    assert out == 'x{a=~"demo",b="demo",c="demo"}[1m]'


def test_substitute_does_not_confuse_a_variable_with_a_longer_one():
    assert substitute("$ns $nsx", {"ns": "a", "nsx": "b"}) == "a b"


def test_unknown_variable_names_itself():
    with pytest.raises(UnknownVariable, match="'cluster'"):
        substitute('x{c="$cluster"}', {})


def test_dashboard_variables_expand_to_all():
    values = variable_values(WAYPOINT)
    assert values["namespace"] == values["service"] == ".*"
    assert values["__rate_interval"] == "1m"
    assert "datasource" not in values


def test_queries_include_panels_and_label_values_variables():
    found = list(queries("waypoint", WAYPOINT))
    variables = [q for q in found if q.panel.startswith("variable ")]
    assert [(q.panel, q.ref) for q in variables] == [
        ("variable namespace", "destination_service_namespace"),
        ("variable service", "destination_service"),
    ]
    assert variables[0].expr == 'istio_requests_total{reporter="waypoint"}'
    assert len(found) - len(variables) == sum(len(p.get("targets", [])) for p in WAYPOINT["panels"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("label_values(x, y)", ("x", "y")),
        ('label_values(x{a="b, c"}, y)', ('x{a="b, c"}', "y")),
        ("label_values(y)", (None, "y")),
    ],
)
def test_variable_selector(query, expected):
    assert variable_selector(query) == expected


def test_variable_selector_refuses_other_queries():
    with pytest.raises(ValueError, match="label_values"):
        variable_selector("query_result(up)")


@pytest.mark.parametrize(
    ("expr", "excused"),
    [
        # Circuit-breaker overflow: the waypoint refuses with UO, and the dashboard test causes it.
        ('rate(istio_requests_total{response_flags=~".*UO.*"}[1m])', False),
        ('rate(istio_requests_total{response_flags="UO"}[1m])', False),
        ('rate(istio_requests_total{response_flags=~".*DENY.*"}[1m])', False),
        ('rate(istio_requests_total{response_flags!="-"}[1m])', False),
        ('rate(istio_requests_total{response_code=~"5.."}[1m])', False),
        ('rate(nodemesh_agent_policy_decisions_total{decision="deny"}[1m])', False),
        ("rate(pilot_total_xds_rejects_total[1m])", True),
        ("rate(nodemesh_controller_csr_refused_total[1m])", False),
    ],
)
def test_only_the_allow_list_excuses_a_query(expr, excused):
    assert may_be_empty(expr) is excused


def test_every_allowed_empty_entry_says_why():
    assert ALLOWED_EMPTY and all(len(entry.reason) > 40 for entry in ALLOWED_EMPTY)


def test_allowed_empty_names_the_entry_and_honours_a_custom_list():
    refused = AllowedEmpty("nodemesh_controller_csr_refused_total", "no refusal here")
    expr = "sum by (reason) (rate(nodemesh_controller_csr_refused_total[1m]))"
    assert allowed_empty(expr, [refused]) is refused
    assert allowed_empty(expr) is None
    assert allowed_empty('x{response_flags="UO"}', [refused]) is None  # another metric
    flagged = AllowedEmpty("x", "why", label="response_flags", value="UO")
    assert allowed_empty('x{response_flags=~".*UO.*"}', [flagged]) is flagged
    assert allowed_empty('x{response_flags=~".*RL.*"}', [flagged]) is None
    assert allowed_empty("x", [flagged]) is None  # no matcher on the label: not narrowed to UO


@pytest.mark.parametrize(
    ("expr", "run"),
    [
        ("(sum(rate(x[1m]))) or vector(0)", "sum(rate(x[1m]))"),
        ("(x) or vector(0)", "x"),
        ("sum(rate(x[1m]))", "sum(rate(x[1m]))"),
        ("(a) or (b) or vector(0)", "(a) or (b) or vector(0)"),  # not one parenthesised X
        ("x or vector(0)", "x or vector(0)"),
        ("(x) or vector(1)", "(x) or vector(1)"),
    ],
)
def test_without_zero_fallback(expr, run):
    assert without_zero_fallback(expr) == run


def test_evaluate_reports_empty_and_failing_queries_only():
    ran = []

    def run(expr):
        ran.append(expr)
        if "histogram_quantile(0.99" in expr:
            raise RuntimeError("bad_data: parse error")
        empty = ("istio_request_bytes_bucket", "UO", "DENY", "label_overflow")
        return [] if any(e in expr for e in empty) else [{"value": 1}]

    findings = evaluate({"waypoint": WAYPOINT}, run)
    assert all("$" not in e for e in ran)  # every variable was substituted
    assert not any(e.endswith("or vector(0)") for e in ran)  # the fallback cannot hide no data
    problems = {(f.query.panel, f.problem) for f in findings}
    assert ("Request size", "no data") in problems
    assert ("P99 latency", "RuntimeError: bad_data: parse error") in problems
    assert ("Authorization denials/s", "no data") in problems  # a denial is not excused
    assert ("Label sets over the limit", "no data") in problems  # checked without its fallback
    assert ("Resilience outcomes", "no data") in problems  # nor is a circuit-breaker overflow
    assert all(isinstance(f, Finding) and f.evaluated in ran for f in findings)


def test_evaluate_passes_overridden_values_and_clean_runs_report_nothing():
    ran = []
    findings = evaluate({"w": WAYPOINT}, lambda e: ran.append(e) or [1], values={"service": "a"})
    assert findings == []
    assert any('destination_service=~"a"' in e for e in ran)

"""`--from`, `--to`, `-n`, `--verdict`, `--http-status`: what each selects, and what it refuses."""

from __future__ import annotations

import pytest

from nodemesh.flows import Endpoint, FlowFilter, FlowFilterError, FlowVerdict
from tests.unit.flows.events import event

ALLOWED = event()
DENIED = event(verdict=FlowVerdict.DENIED, policy="shop/web-public", rule=0)
L4 = event(http=None, service=None, destination=Endpoint("shop", "db", address="198.18.2.8:5432"))
OTHER_NS = event(
    source=Endpoint("blog", "client"), destination=Endpoint("blog", "api"), service=None
)


def matching(flt: FlowFilter, *events):
    return [e for e in events if flt.matches(e)]


def test_no_filter_matches_everything():
    assert matching(FlowFilter(), ALLOWED, L4, OTHER_NS) == [ALLOWED, L4, OTHER_NS]


def test_from_a_bare_name_matches_any_namespace_unless_n_is_given():
    assert matching(FlowFilter.parse(source="client"), ALLOWED, OTHER_NS) == [ALLOWED, OTHER_NS]
    assert matching(FlowFilter.parse(source="client", namespace="blog"), ALLOWED, OTHER_NS) == [
        OTHER_NS
    ]
    assert matching(FlowFilter.parse(source="shop/client"), ALLOWED, OTHER_NS) == [ALLOWED]


def test_to_matches_the_destination_pod_or_the_service_addressed():
    assert matching(FlowFilter.parse(destination="web-v1"), ALLOWED, L4) == [ALLOWED]
    assert matching(FlowFilter.parse(destination="web"), ALLOWED, L4) == [ALLOWED]  # Service
    assert matching(FlowFilter.parse(destination="shop/db"), ALLOWED, L4) == [L4]
    assert matching(FlowFilter.parse(destination="blog/web"), ALLOWED, L4) == []


def test_namespace_alone_matches_either_side():
    assert matching(FlowFilter.parse(namespace="blog"), ALLOWED, OTHER_NS) == [OTHER_NS]
    assert matching(FlowFilter.parse(namespace="shop"), ALLOWED, OTHER_NS) == [ALLOWED]


def test_verdict_in_any_case():
    assert matching(FlowFilter.parse(verdict="denied"), ALLOWED, DENIED) == [DENIED]


@pytest.mark.parametrize(("status", "hits"), [("200", 1), ("2xx", 1), ("403", 0), ("5XX", 0)])
def test_http_status_exact_or_class_and_l4_events_never_match(status, hits):
    assert len(matching(FlowFilter.parse(http_status=status), ALLOWED, L4)) == hits


def test_all_conditions_must_hold():
    flt = FlowFilter.parse(source="client", verdict="FORWARDED", http_status=403)
    assert matching(flt, ALLOWED, DENIED) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"verdict": "DROPPED"}, "one of FORWARDED, DENIED, ERROR"),
        ({"http_status": "99"}, "a status \\(403\\) or a class \\(5xx\\)"),
        ({"http_status": "6xx"}, "a class"),
        ({"source": "shop/"}, "namespace/name"),
        ({"destination": "/web"}, "namespace/name"),
    ],
)
def test_values_that_could_never_match_are_refused(kwargs, message):
    with pytest.raises(FlowFilterError, match=message):
        FlowFilter.parse(**kwargs)

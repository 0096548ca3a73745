"""Compiling a push: bad routes are rejected alone with errors that name them; timeouts; inputs."""

from __future__ import annotations

import dataclasses
import random

import pytest

from controller import model
from tests.unit.waypoint.routing.helpers import (
    NS,
    SERVICES,
    compile_,
    exact,
    prefix,
    regex,
    request,
    route,
    rule,
    winner,
)
from waypoint.routing import ParentRef, RouteError, RouteSource, Timeouts, compile_routes


def test_a_bad_regex_rejects_its_route_alone():
    good = route("good", rule(prefix("/")))
    bad = route("bad", rule(prefix("/ok")), {"name": "canary", "matches": [regex("/v[0-9")]})

    compiled = compile_(bad, good)

    (error,) = compiled.errors
    assert isinstance(error, RouteError)
    assert (error.route, error.rule, error.rule_name) == ("shop/bad", 1, "canary")
    assert error.field == "rules[1].matches[0].path.value"
    assert str(error).startswith("HTTPRoute shop/bad rule 1 ('canary'): spec.rules[1].matches[0]")
    assert compiled.applied == ("shop/good",)
    assert winner(compiled.tables.get(NS, "web", 80), request("/ok")) == ("good", 0, "v1")


def test_data_that_is_not_normalized_is_an_error_not_a_crash():
    raw = RouteSource(NS, "raw", (ParentRef(NS, "web"),), ({"backendRefs": [{"name": "v1"}]},))

    (error,) = compile_routes([raw], SERVICES).errors

    assert error.field == "rules[0]"
    assert "not normalized" in error.problem and "'matches'" in error.problem
    assert "controller" in error.hint


def test_unknown_filter_type_is_an_error():
    data = {"filters": [{"type": "Teleport"}], "backendRefs": [{"name": "v1", "port": 8080}]}

    (error,) = compile_(route("r", data)).errors

    assert error.field == "rules[0].filters[0].type"
    assert "Teleport" in error.problem


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [
        (None, Timeouts()),
        ({"request": "10s"}, Timeouts(request_ms=10_000)),
        ({"request": "1m", "backendRequest": "500ms"}, Timeouts(60_000, 500)),
        ({"request": "0s", "backendRequest": "2s"}, Timeouts(None, 2_000)),  # 0s disables
        ({"request": "1h2m3s"}, Timeouts(request_ms=3_723_000)),
    ],
)
def test_timeouts_come_from_the_rule(timeouts, expected):
    data = rule(prefix("/"))
    if timeouts is not None:
        data["timeouts"] = timeouts
    routes = compile_(route("r", data)).tables.get(NS, "web", 80)

    found = routes.match(request())
    outcome = found.decide(request(), random.Random(1))

    assert found.timeouts == expected and outcome.timeouts == expected


def test_a_malformed_duration_is_an_error():
    (error,) = compile_(route("r", rule(timeouts={"request": "ten seconds"}))).errors

    assert error.field == "rules[0].timeouts.request"


def test_the_default_route_has_no_timeouts_and_forwards_unchanged():
    head = request("/x?y=1", headers=(("a", "b"),))
    found = compile_().tables.get(NS, "web", 9090).match(head)

    outcome = found.decide(head, random.Random(1))

    assert outcome.head == head and str(outcome.target) == "shop/web:9090"
    assert outcome.timeouts == Timeouts() and outcome.mirrors == ()


def test_hostnames_do_not_restrict_mesh_routes():
    # GEP-1294: GAMMA implementations should not infer anything from hostnames.
    hosted = dataclasses.replace(route("r", rule(exact("/a"))), hostnames=("elsewhere.example",))

    found = compile_(hosted).tables.get(NS, "web", 80).match(request("/a", authority="web"))

    assert found is not None and found.route.name == "r"


def test_from_the_controller_model():
    parent = model.RouteParent(namespace=NS, name="web", port=80, section_name="")
    rules = '[{"backendRefs":[{"group":"","kind":"Service","name":"v2","port":8080,"weight":1,'
    rules += '"filters":[]}],"filters":[],"matches":[{"headers":[],"path":{"type":"Exact",'
    rules += '"value":"/m"},"queryParams":[]}]}]'
    http_route = model.HttpRoute("m", NS, (parent,), ("a.example",), rules)
    service = model.Service(
        name="web",
        namespace=NS,
        hostname="web.shop.svc.cluster.local",
        vips=("198.18.0.10",),
        ports=(model.ServicePort("http", 80, 8080, "TCP", "http"),),
        endpoints=(),
        waypoint="",
    )

    source = RouteSource.from_model(http_route, created=5)
    compiled = compile_routes([source], [service, *SERVICES[1:]])

    assert source.created == 5 and source.hostnames == ("a.example",)
    assert winner(compiled.tables.get(NS, "web", 80), request("/m")) == ("m", 0, "v2")


def test_retry_settings_pass_through_to_the_match():
    data = rule(prefix("/"), retry={"codes": [503], "attempts": 3, "backoff": "100ms"})
    found = compile_(route("r", data)).tables.get(NS, "web", 80).match(request())

    assert found.retry == {"codes": [503], "attempts": 3, "backoff": "100ms"}
    assert compile_().tables.get(NS, "web", 80).match(request()).retry is None

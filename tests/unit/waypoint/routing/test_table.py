"""Gateway API precedence across rules and routes, GAMMA attachment, and the implicit default route.

Each precedence case lists routes in the order most likely to expose a bug (the expected winner
last, or written so list order alone would pick the loser), then checks which rule wins.
"""

from __future__ import annotations

import pytest

from tests.unit.waypoint.routing.helpers import (
    NS,
    exact,
    headers,
    params,
    prefix,
    regex,
    request,
    route,
    rule,
    table,
    winner,
)
from waypoint.routing import ParentRef, PortInfo, ServiceInfo, compile_routes

H2 = headers(X_A="1", X_B="1")
H1 = headers(X_A="1")
Q2 = params(a="1", b="1")
Q1 = params(a="1")
ALL_HEADERS = (("x-a", "1"), ("x-b", "1"))

PRECEDENCE = [
    # (case, rules of one route "r" (index = rule), request kwargs, winning rule index)
    ("exact beats prefix", [rule(prefix("/api")), rule(exact("/api"))], {"path": "/api"}, 1),
    (
        "exact beats longer prefix",
        [rule(prefix("/api/v1")), rule(exact("/api"))],
        {"path": "/api"},
        1,
    ),
    (
        "longest prefix wins",
        [rule(prefix("/api")), rule(prefix("/api/v1"))],
        {"path": "/api/v1/x"},
        1,
    ),
    (
        "longest prefix, other order",
        [rule(prefix("/api/v1")), rule(prefix("/api"))],
        {"path": "/api/v1"},
        0,
    ),
    (
        "trailing slash adds no length",
        [rule(prefix("/api/")), rule(prefix("/api"))],
        {"path": "/api/x"},
        0,
    ),
    (
        "trailing slash adds no length 2",
        [rule(prefix("/api")), rule(prefix("/api/"))],
        {"path": "/api/x"},
        0,
    ),
    ("prefix beats regex", [rule(regex("/api/.*")), rule(prefix("/"))], {"path": "/api/x"}, 1),
    ("longer regex first", [rule(regex("/.*")), rule(regex("/api/.*"))], {"path": "/api/x"}, 1),
    ("exact beats regex", [rule(regex("/api")), rule(exact("/api"))], {"path": "/api"}, 1),
    (
        "method beats none",
        [rule(prefix("/api")), rule(prefix("/api", method="GET"))],
        {"path": "/api"},
        1,
    ),
    (
        "path beats method",
        [rule(prefix("/", method="GET")), rule(prefix("/api"))],
        {"path": "/api"},
        1,
    ),
    (
        "more headers win",
        [rule(prefix("/", headers=H1)), rule(prefix("/", headers=H2))],
        {"headers": ALL_HEADERS},
        1,
    ),
    (
        "method beats headers",
        [rule(prefix("/", headers=H2)), rule(prefix("/", method="GET"))],
        {"headers": ALL_HEADERS},
        1,
    ),
    (
        "longer prefix beats headers",
        [rule(prefix("/", headers=H2)), rule(prefix("/a"))],
        {"path": "/a", "headers": ALL_HEADERS},
        1,
    ),
    (
        "headers beat query params",
        [rule(prefix("/", queryParams=Q2)), rule(prefix("/", headers=H1))],
        {"path": "/?a=1&b=1", "headers": ALL_HEADERS},
        1,
    ),
    (
        "more query params win",
        [rule(prefix("/", queryParams=Q1)), rule(prefix("/", queryParams=Q2))],
        {"path": "/?a=1&b=1"},
        1,
    ),
    (
        "full tie: first rule",
        [rule(prefix("/a"), to="v1"), rule(prefix("/a"), to="v2")],
        {"path": "/a"},
        0,
    ),
    (
        "specific rule that misses falls through",
        [rule(prefix("/")), rule(prefix("/api", headers=H1))],
        {"path": "/api"},
        0,
    ),
    (
        "precedence is per match, not per rule",
        [rule(prefix("/x")), rule(prefix("/"), exact("/x"))],
        {"path": "/x"},
        1,
    ),
    (
        "per match, the other match",
        [rule(prefix("/x")), rule(prefix("/"), exact("/x"))],
        {"path": "/x/y"},
        0,
    ),
    ("matches in a rule are ORed", [rule(exact("/a"), exact("/b"))], {"path": "/b"}, 0),
]


@pytest.mark.parametrize(
    ("rules", "req", "expected"),
    [case[1:] for case in PRECEDENCE],
    ids=[case[0] for case in PRECEDENCE],
)
def test_precedence_within_a_route(rules, req, expected):
    assert winner(table(route("r", *rules)), request(**req))[1] == expected


def test_no_matching_rule_is_none():
    routes = table(route("r", rule(prefix("/api")), rule(exact("/x"))))

    assert routes.match(request("/apix")) is None
    assert routes.match(request("/")) is None


def test_across_routes_the_oldest_wins_on_a_tie():
    old = route("zz-old", rule(prefix("/a"), to="v1"), created=100)
    new = route("aa-new", rule(prefix("/a"), to="v2"), created=200)

    assert winner(table(new, old), request("/a")) == ("zz-old", 0, "v1")


def test_across_routes_of_one_age_namespace_name_order_wins():
    first = route("alpha", rule(prefix("/a"), to="v1"))
    second = route("beta", rule(prefix("/a"), to="v2"))

    assert winner(table(second, first), request("/a")) == ("alpha", 0, "v1")


def test_specificity_beats_route_age():
    old = route("old", rule(prefix("/a"), to="v1"), created=1)
    new = route("new", rule(prefix("/a/b"), to="v2"), created=2)

    assert winner(table(old, new), request("/a/b")) == ("new", 0, "v2")
    assert winner(table(old, new), request("/a/c")) == ("old", 0, "v1")


def test_a_tie_in_a_younger_route_does_not_beat_a_later_rule_of_an_older_one():
    old = route("old", rule(prefix("/x")), rule(prefix("/a"), to="v1"), created=1)
    new = route("new", rule(prefix("/a"), to="v2"), created=2)

    assert winner(table(new, old), request("/a")) == ("old", 1, "v1")


def test_no_route_attached_means_the_default_route_to_the_service_itself():
    found = table().match(request("/anything"))

    assert found is not None and found.route is None
    assert found.rule.backends.backends[0].target.name == "web"
    assert found.rule.backends.backends[0].target.port == 80


def test_parent_port_attaches_to_that_port_only():
    only_80 = route("r", rule(exact("/a")), parents=(ParentRef(NS, "web", port=80),))

    assert table(only_80, port=80).match(request("/b")) is None
    assert table(only_80, port=9090).match(request("/b")).route is None  # default route


def test_section_name_attaches_to_the_named_port_only():
    admin = route("r", rule(exact("/a")), parents=(ParentRef(NS, "web", section_name="admin"),))

    assert table(admin, port=9090).match(request("/b")) is None
    assert table(admin, port=80).match(request("/b")).route is None


def test_a_parent_without_port_attaches_to_every_port():
    every = route("r", rule(exact("/a")))

    assert table(every, port=80).match(request("/b")) is None
    assert table(every, port=9090).match(request("/b")) is None


def test_two_parent_refs_to_one_port_attach_once():
    twice = route("r", rule(exact("/a")), parents=(ParentRef(NS, "web"), ParentRef(NS, "web", 80)))

    assert len(table(twice).producer) == 1


def test_consumer_routes_apply_only_to_their_own_namespace():
    producer = route("producer", rule(prefix("/"), to="v1"))
    consumer = route("consumer", rule(prefix("/"), to="v2"), namespace="other")
    routes = table(producer, consumer)

    assert winner(routes, request(), client_namespace="other") == ("consumer", 0, "v2")
    assert winner(routes, request(), client_namespace="elsewhere") == ("producer", 0, "v1")
    assert winner(routes, request(), client_namespace=None) == ("producer", 0, "v1")


def test_consumer_routes_alone_leave_other_clients_on_the_default_route():
    consumer = route("consumer", rule(exact("/only")), namespace="other")
    routes = table(consumer)

    assert routes.match(request("/x"), client_namespace="other") is None
    assert routes.match(request("/x"), client_namespace=NS).route is None


def test_route_to_an_unknown_parent_attaches_nowhere():
    lost = route("lost", rule(exact("/a")), parents=(ParentRef(NS, "nope"),))
    compiled = compile_routes([lost], [ServiceInfo(NS, "web", (PortInfo("", 80),))])

    assert compiled.errors == () and compiled.applied == ("shop/lost",)
    assert compiled.tables.get(NS, "web", 80).match(request("/x")).route is None
    assert compiled.tables.get(NS, "nope", 80) is None


def test_unknown_service_port_has_no_table():
    assert compile_routes([], []).tables.get(NS, "web", 80) is None

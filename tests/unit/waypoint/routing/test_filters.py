"""Filters through `RouteMatch.decide`: header modifiers, redirects, rewrites, mirrors, extensions.

Each test compiles a one-rule route the way the controller would push it and looks at the outcome.
"""

from __future__ import annotations

import random

import pytest

from tests.unit.waypoint.routing.helpers import (
    NS,
    SERVICES,
    backend,
    compile_,
    exact,
    prefix,
    regex,
    request,
    route,
    table,
)
from waypoint.messages import ResponseHead
from waypoint.routing import Forward, PortInfo, Reply, ReplyReason, ServiceInfo, compile_routes
from waypoint.routing.headers import HeaderModifier, compile_header_modifier


def decide(*filters, match=None, head=None, port=80, backend_filters=None):
    """The outcome of one request through a one-rule route with `filters`, on port `port`."""
    ref = backend("v1", filters=backend_filters) if backend_filters else backend("v1")
    data = {"matches": [match or prefix("/")], "filters": list(filters), "backendRefs": [ref]}
    services = (ServiceInfo(NS, "web", (PortInfo("", port),)), *SERVICES[1:])
    compiled = compile_routes([route("r", data)], services)
    assert compiled.errors == ()
    head = head or request()
    found = compiled.tables.get(NS, "web", port).match(head)
    assert found is not None
    return found.decide(head, random.Random(7))


def header_filter(kind="RequestHeaderModifier", **config):
    field = kind[0].lower() + kind[1:]
    return {"type": kind, field: config}


def redirect(**config):
    return {"type": "RequestRedirect", "requestRedirect": config}


def rewrite(**config):
    return {"type": "URLRewrite", "urlRewrite": config}


def replace_prefix(value):
    return {"type": "ReplacePrefixMatch", "replacePrefixMatch": value}


def replace_full(value):
    return {"type": "ReplaceFullPath", "replaceFullPath": value}


# --- header modifiers -----------------------------------------------------------------------------


def test_header_modifier_set_add_remove_case_insensitively():
    modifier = compile_header_modifier(
        {
            "set": [{"name": "X-Set", "value": "new"}],
            "add": [{"name": "X-Add", "value": "two"}],
            "remove": ["X-Drop"],
        }
    )
    headers = (("x-set", "old"), ("x-set", "older"), ("x-add", "one"), ("x-drop", "1"), ("k", "v"))

    assert modifier.apply(headers) == (
        ("x-add", "one"),
        ("k", "v"),
        ("x-set", "new"),
        ("x-add", "two"),
    )


def test_set_wins_over_remove_of_the_same_name():
    modifier = HeaderModifier(set=(("x-a", "1"),), remove=("x-a",))

    assert modifier.apply((("x-a", "0"),)) == (("x-a", "1"),)


def test_request_header_modifier_rewrites_host_through_the_authority():
    outcome = decide(
        header_filter(set=[{"name": "Host", "value": "api.internal"}], remove=["host"])
    )

    assert isinstance(outcome, Forward)
    assert outcome.head.authority == "api.internal"
    assert all(name != "host" for name, _ in outcome.head.headers)


def test_request_header_modifier_applies_to_the_forwarded_request():
    head = request(headers=(("x-user", "a"), ("x-debug", "1")))
    outcome = decide(
        header_filter(add=[{"name": "X-Mesh", "value": "nodemesh"}], remove=["X-Debug"]), head=head
    )

    assert outcome.head.headers == (("x-user", "a"), ("x-mesh", "nodemesh"))


def test_response_header_modifier_applies_to_the_response_only():
    head = request(headers=(("x-cache", "req"),))
    outcome = decide(
        header_filter("ResponseHeaderModifier", set=[{"name": "X-Cache", "value": "miss"}]),
        head=head,
    )
    response = ResponseHead(200, (("x-cache", "hit"), ("server", "app")))

    assert outcome.head.headers == (("x-cache", "req"),)
    assert outcome.filter_response(response).headers == (("server", "app"), ("x-cache", "miss"))


def test_rule_then_backend_filters_in_that_order():
    rule_filter = header_filter(set=[{"name": "X-Step", "value": "rule"}])
    backend_filter = header_filter(add=[{"name": "X-Step", "value": "backend"}])
    response_filter = header_filter("ResponseHeaderModifier", add=[{"name": "X-R", "value": "b"}])

    outcome = decide(rule_filter, backend_filters=[backend_filter, response_filter])

    assert outcome.head.headers == (("x-step", "rule"), ("x-step", "backend"))
    assert outcome.filter_response(ResponseHead(200)).headers == (("x-r", "b"),)


# --- redirects ------------------------------------------------------------------------------------

LOCATIONS = [
    # (redirect config, request kwargs, listener port, expected Location)
    ({}, {}, 80, "http://web.shop.svc.cluster.local/"),
    ({}, {}, 8080, "http://web.shop.svc.cluster.local:8080/"),
    ({"scheme": "https"}, {}, 8080, "https://web.shop.svc.cluster.local/"),
    ({"scheme": "https", "port": 8443}, {}, 80, "https://web.shop.svc.cluster.local:8443/"),
    ({"scheme": "http"}, {"scheme": "https"}, 443, "http://web.shop.svc.cluster.local/"),
    ({}, {"scheme": "https"}, 443, "https://web.shop.svc.cluster.local/"),
    ({"hostname": "example.com"}, {"authority": "web:8080"}, 80, "http://example.com/"),
    ({}, {"authority": "web:8080"}, 80, "http://web/"),  # the request's port is not reused
    ({"port": 80}, {"authority": "[fd00::1]:99"}, 80, "http://[fd00::1]/"),
    ({"port": 9000}, {"path": "/a?x=1"}, 80, "http://web.shop.svc.cluster.local:9000/a?x=1"),
    (
        {"path": replace_full("/new")},
        {"path": "/old/x?q=1"},
        80,
        "http://web.shop.svc.cluster.local/new?q=1",
    ),
]


@pytest.mark.parametrize(("config", "req", "port", "location"), LOCATIONS)
def test_redirect_location(config, req, port, location):
    outcome = decide(redirect(**config), head=request(**req), port=port)

    assert isinstance(outcome, Reply) and outcome.reason is ReplyReason.REDIRECT
    assert outcome.response.status == 302
    assert outcome.response.headers[0] == ("location", location)


def test_redirect_status_code_301():
    outcome = decide(redirect(statusCode=301))

    assert outcome.response.status == 301


def test_redirect_replace_prefix_match():
    outcome = decide(
        redirect(path=replace_prefix("/v2")), match=prefix("/v1/"), head=request("/v1/users?id=3")
    )

    assert outcome.response.headers[0] == (
        "location",
        "http://web.shop.svc.cluster.local/v2/users?id=3",
    )


def test_redirect_wins_over_backends():
    outcome = decide(redirect(hostname="elsewhere.example"))

    assert isinstance(outcome, Reply) and outcome.detail == "http://elsewhere.example/"


# --- rewrites -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match_prefix", "replacement", "path", "expected"),
    [
        ("/foo", "/", "/foo", "/"),
        ("/foo", "/", "/foo/", "/"),
        ("/foo", "/", "/foo/bar", "/bar"),
        ("/foo/", "/", "/foo/bar", "/bar"),
        ("/foo", "/xyz", "/foo/", "/xyz/"),
        ("/foo", "/xyz/", "/foo/bar?q=1", "/xyz/bar?q=1"),
        ("/foo", "", "/foo", "/"),
        ("/", "/app", "/x", "/app/x"),
    ],
)
def test_url_rewrite_prefix(match_prefix, replacement, path, expected):
    outcome = decide(
        rewrite(path=replace_prefix(replacement)), match=prefix(match_prefix), head=request(path)
    )

    assert isinstance(outcome, Forward)
    assert outcome.head.path == expected


def test_url_rewrite_full_path_keeps_the_query():
    outcome = decide(rewrite(path=replace_full("/index.html")), head=request("/a/b?v=1"))

    assert outcome.head.path == "/index.html?v=1"


def test_url_rewrite_hostname_replaces_the_authority():
    outcome = decide(rewrite(hostname="v1.internal"), head=request(authority="web:80"))

    assert outcome.head.authority == "v1.internal"


def test_rewrite_uses_the_prefix_of_the_match_that_won():
    data = {
        "matches": [prefix("/long/prefix"), prefix("/short")],
        "filters": [rewrite(path=replace_prefix("/x"))],
        "backendRefs": [backend("v1")],
    }
    routes = table(route("r", data))

    for path, expected in [("/long/prefix/a", "/x/a"), ("/short/a", "/x/a")]:
        head = request(path)
        assert routes.match(head).decide(head, random.Random(1)).head.path == expected


@pytest.mark.parametrize("match", [exact("/foo"), regex("/foo.*")])
def test_prefix_rewrite_beside_a_non_prefix_match_is_rejected(match):
    data = {"matches": [prefix("/ok"), match], "filters": [rewrite(path=replace_prefix("/"))]}

    compiled = compile_(route("r", data))

    (error,) = compiled.errors
    assert error.route == "shop/r" and error.rule == 0
    assert error.field == "rules[0].matches[1].path.type"
    assert "ReplacePrefixMatch" in str(error)


def test_prefix_rewrite_in_a_backend_filter_is_checked_too():
    ref = backend("v1", filters=[rewrite(path=replace_prefix("/"))])
    compiled = compile_(route("r", {"matches": [exact("/a")], "backendRefs": [ref]}))

    assert len(compiled.errors) == 1


# --- mirrors and extension filters ----------------------------------------------------------------


def mirror(**config):
    return {"type": "RequestMirror", "requestMirror": {"backendRef": backend("mirror"), **config}}


def mirror_share(filter_, draws=4000):
    data = {"filters": [filter_], "backendRefs": [backend("v1")]}
    routes = table(route("r", data))
    rng = random.Random(42)
    head = request("/m")
    found = routes.match(head)
    return sum(len(found.decide(head, rng).mirrors) for _ in range(draws)) / draws


def test_mirror_targets_carry_the_filtered_request():
    outcome = decide(header_filter(set=[{"name": "X-A", "value": "1"}]), mirror())

    (copy,) = outcome.mirrors
    assert (copy.target.name, copy.target.port) == ("mirror", 8080)
    assert copy.head == outcome.head


@pytest.mark.parametrize(
    ("config", "share"),
    [
        ({}, 1.0),
        ({"percent": 0}, 0.0),
        ({"percent": 100}, 1.0),
        ({"percent": 25}, 0.25),
        ({"fraction": {"numerator": 1, "denominator": 10}}, 0.1),
        ({"fraction": {"numerator": 5}}, 0.05),  # denominator defaults to 100
    ],
)
def test_mirror_sampling(config, share):
    assert mirror_share(mirror(**config)) == pytest.approx(share, abs=0.025)


def test_mirror_to_an_unknown_service_is_skipped():
    filter_ = {"type": "RequestMirror", "requestMirror": {"backendRef": backend("ghost")}}

    assert decide(filter_).mirrors == ()


def test_extension_ref_is_not_skipped_it_answers_500():
    filter_ = {
        "type": "ExtensionRef",
        "extensionRef": {"group": "x.io", "kind": "Auth", "name": "a"},
    }

    outcome = decide(filter_)

    assert isinstance(outcome, Reply)
    assert outcome.response.status == 500 and outcome.reason is ReplyReason.UNSUPPORTED_FILTER
    assert "x.io/Auth" in outcome.detail

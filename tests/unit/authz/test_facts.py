"""nodemesh.authz.facts: what the matchers see of a connection and a request."""

from __future__ import annotations

import pytest

from nodemesh.authz import Facts, HttpFacts, principal_of
from nodemesh.authz.facts import host_spellings


@pytest.mark.parametrize(
    ("authority", "spellings"),
    [
        ("cart.shop", ("cart.shop",)),
        ("Cart.Shop:8080", ("cart.shop:8080", "cart.shop")),
        ("198.18.0.1:80", ("198.18.0.1:80", "198.18.0.1")),
        ("[2001:db8::1]:443", ("[2001:db8::1]:443", "[2001:db8::1]")),
        ("[2001:db8::1]", ("[2001:db8::1]",)),
        ("2001:db8::1", ("2001:db8::1",)),  # not a host:port; taken whole
        ("", ()),
    ],
)
def test_host_spellings(authority, spellings):
    assert host_spellings(authority) == spellings


def test_headers_are_looked_up_case_insensitively_and_joined_like_envoy():
    http = HttpFacts.of(
        "GET",
        "/a",
        "cart.shop",
        (("X-User", "a"), ("x-user", "b"), ("x-empty", "")),
        scheme="https",
    )
    assert http.header("x-user") == "a,b"
    assert http.header("x-empty") == ""  # present, empty
    assert http.header("x-missing") is None
    assert (http.header(":method"), http.header(":path"), http.header(":scheme")) == (
        "GET",
        "/a",
        "https",
    )
    assert http.header("host") == http.header(":authority") == "cart.shop"
    assert HttpFacts.of("GET", "/", "").header("host") is None


def test_remote_address_is_parsed_once():
    assert HttpFacts.of("GET", "/", "h", remote_ip="::ffff:198.18.0.5").remote_key == (
        4,
        0xC6120005,
    )
    assert HttpFacts.of("GET", "/", "h", remote_ip="not-an-ip").remote_key is None


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        ("spiffe://cluster.local/ns/web/sa/frontend", ("cluster.local/ns/web/sa/frontend", "web")),
        ("spiffe://cluster.local/nodemesh/node/node1", ("", "")),  # a node agent: no principal
        ("spiffe://cluster.local/ns//sa/x", ("", "")),
        ("https://cluster.local/ns/web/sa/frontend", ("", "")),
        (None, ("", "")),
    ],
)
def test_only_workload_identities_are_principals(identity, expected):
    assert principal_of(identity) == expected


def test_facts_without_http_are_the_agents_view():
    facts = Facts.of("spiffe://td/ns/a/sa/b", "198.18.0.5", "198.18.1.2", 8080)
    assert facts.http is None and (facts.principal, facts.namespace) == ("td/ns/a/sa/b", "a")

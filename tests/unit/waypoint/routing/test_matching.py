"""Each HTTPRouteMatch part on its own: path, headers, query parameters, method, and bad regexes."""

from __future__ import annotations

import pytest

from tests.unit.waypoint.routing.helpers import exact, headers, normalize, params, prefix, regex
from tests.unit.waypoint.routing.helpers import request as make_request
from waypoint.routing.errors import FieldError
from waypoint.routing.matching import (
    MAX_PATTERN_LENGTH,
    RequestView,
    compile_match,
    compile_pattern,
)


def matches(match: dict, **request) -> bool:
    (rule,) = normalize([{"matches": [match]}])
    compiled = compile_match(rule["matches"][0], "rules[0].matches[0]")
    return compiled.matches(RequestView(make_request(**request)))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/healthz", True),
        ("/healthz?probe=1", True),  # the query is not part of the path
        ("/healthz/", False),
        ("/healthz/x", False),
        ("/Healthz", False),
    ],
)
def test_exact_path(path, expected):
    assert matches(exact("/healthz"), path=path) is expected


@pytest.mark.parametrize(
    ("value", "path", "expected"),
    [
        ("/api", "/api", True),
        ("/api", "/api/v1?x=1", True),
        ("/api", "/apiv1", False),
        ("/api/", "/api", True),
        ("/", "/", True),
        ("/", "/x", True),
    ],
)
def test_prefix_path(value, path, expected):
    assert matches(prefix(value), path=path) is expected


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/v[0-9]+/.*", "/v2/users", True),
        ("/v[0-9]+/.*", "/v2", False),
        ("/v[0-9]+", "/v2/users", False),  # full match, not search
        ("/v[0-9]+", "/x/v2", False),
        ("/v[0-9]+", "/v2?q=1", True),
    ],
)
def test_regex_path_is_a_full_match(pattern, path, expected):
    assert matches(regex(pattern), path=path) is expected


def test_no_path_given_matches_everything():
    assert matches({}, path="/any/thing")
    assert matches({}, path="*", method="OPTIONS")


def test_header_names_are_case_insensitive_values_are_not():
    match = prefix("/", headers=headers(X_Version="v2"))

    assert matches(match, headers=(("x-version", "v2"),))
    assert not matches(match, headers=(("x-version", "V2"),))
    assert not matches(match, headers=(("x-other", "v2"),))
    assert not matches(match)


def test_header_regex_is_a_full_match():
    match = prefix("/", headers=[{"type": "RegularExpression", "name": "x-user", "value": "a.*"}])

    assert matches(match, headers=(("x-user", "alice"),))
    assert not matches(match, headers=(("x-user", "bob-alice"),))


def test_repeated_header_is_matched_as_one_comma_joined_value():
    repeated = (("x-tag", "a"), ("x-tag", "b"))

    assert matches(prefix("/", headers=headers(X_Tag="a,b")), headers=repeated)
    assert not matches(prefix("/", headers=headers(X_Tag="a")), headers=repeated)


def test_every_header_match_must_hold():
    match = prefix("/", headers=headers(X_A="1", X_B="2"))

    assert matches(match, headers=(("x-a", "1"), ("x-b", "2")))
    assert not matches(match, headers=(("x-a", "1"),))


def test_query_param_names_are_case_sensitive():
    match = prefix("/", queryParams=params(debug="1"))

    assert matches(match, path="/?debug=1")
    assert matches(match, path="/?x=2&debug=1")
    assert not matches(match, path="/?Debug=1")
    assert not matches(match, path="/?debug=10")
    assert not matches(match, path="/")


def test_query_param_regex_and_first_value_wins():
    match = prefix(
        "/", queryParams=[{"type": "RegularExpression", "name": "id", "value": "[0-9]+"}]
    )

    assert matches(match, path="/?id=42")
    assert not matches(match, path="/?id=42x")
    assert not matches(match, path="/?id=x&id=42")


def test_query_param_values_are_percent_decoded():
    assert matches(prefix("/", queryParams=params(q="a b")), path="/?q=a%20b")


@pytest.mark.parametrize(("method", "expected"), [("POST", True), ("GET", False), ("post", False)])
def test_method(method, expected):
    assert matches(prefix("/", method="POST"), method=method) is expected


def test_all_parts_are_anded():
    match = prefix("/api", method="PUT", headers=headers(X_A="1"), queryParams=params(q="1"))
    full = {"path": "/api/x?q=1", "method": "PUT", "headers": (("x-a", "1"),)}

    assert matches(match, **full)
    assert not matches(match, **{**full, "path": "/other?q=1"})
    assert not matches(match, **{**full, "method": "GET"})
    assert not matches(match, **{**full, "headers": ()})
    assert not matches(match, **{**full, "path": "/api/x"})


def test_bad_regex_names_the_field():
    with pytest.raises(FieldError) as caught:
        compile_pattern("/v[0-9", "rules[2].matches[0].path.value")

    assert caught.value.field == "rules[2].matches[0].path.value"
    assert "does not compile" in str(caught.value)


def test_regex_length_is_bounded():
    compile_pattern("a" * MAX_PATTERN_LENGTH, "f")
    with pytest.raises(FieldError, match="more than"):
        compile_pattern("a" * (MAX_PATTERN_LENGTH + 1), "f")


def test_bad_header_regex_names_its_entry():
    (rule,) = normalize(
        [
            {
                "matches": [
                    prefix("/", headers=[{"type": "RegularExpression", "name": "a", "value": "("}])
                ]
            }
        ]
    )
    with pytest.raises(FieldError) as caught:
        compile_match(rule["matches"][0], "rules[0].matches[0]")

    assert caught.value.field == "rules[0].matches[0].headers[0].value"

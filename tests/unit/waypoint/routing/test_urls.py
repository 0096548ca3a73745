"""Path-element prefixes, Gateway API's prefix replacement table, query and authority parsing."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypoint.routing.urls import (
    join_authority,
    normalize_prefix,
    parse_query,
    prefix_matches,
    replace_prefix,
    split_authority,
)

SEGMENT = st.text(alphabet="abc-._~", min_size=0, max_size=4)
PATHS = st.lists(SEGMENT, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))


@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        ("/foo", "/foo", True),
        ("/foo", "/foo/", True),
        ("/foo", "/foo/bar", True),
        ("/foo", "/foobar", False),
        ("/foo", "/fo", False),
        ("/foo/", "/foo", True),  # a trailing slash in the prefix is ignored
        ("/foo/", "/foo/bar", True),
        ("/foo/", "/foobar", False),
        ("/foo//", "/foo", True),
        ("/", "/", True),
        ("/", "/anything/at/all", True),
        ("/foo/bar", "/foo", False),
        ("/foo/bar", "/foo/bar/baz", True),
        ("/Foo", "/foo", False),  # case-sensitive
    ],
)
def test_prefix_matches_whole_path_elements(prefix, path, expected):
    assert prefix_matches(normalize_prefix(prefix), path) is expected


@given(prefix=PATHS, path=PATHS)
def test_prefix_match_is_element_wise(prefix, path):
    # The definition in Gateway API's words: the prefix's elements are the path's first elements.
    wanted = normalize_prefix(prefix).split("/")
    expected = path.split("/")[: len(wanted)] == wanted

    assert prefix_matches(normalize_prefix(prefix), path) is expected


# Gateway API's HTTPPathModifier table for ReplacePrefixMatch, row by row.
@pytest.mark.parametrize(
    ("path", "prefix", "replacement", "expected"),
    [
        ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo/", "/foo", "/xyz", "/xyz/"),
        ("/foo/bar", "/foo", "", "/bar"),
        ("/foo/", "/foo", "", "/"),
        ("/foo", "/foo", "", "/"),
        ("/foo/", "/foo", "/", "/"),
        ("/foo", "/foo", "/", "/"),
        # and around the root prefix
        ("/", "/", "/xyz", "/xyz/"),
        ("/a/b", "/", "/xyz", "/xyz/a/b"),
        ("/a/b", "/", "/", "/a/b"),
    ],
)
def test_replace_prefix_follows_the_gateway_api_table(path, prefix, replacement, expected):
    assert replace_prefix(path, normalize_prefix(prefix), replacement) == expected


@given(prefix=PATHS, rest=PATHS, replacement=PATHS)
def test_replace_prefix_swaps_the_matched_elements_only(prefix, rest, replacement):
    normalized, new = normalize_prefix(prefix), normalize_prefix(replacement)
    path = normalized + rest

    result = replace_prefix(path, normalized, replacement)

    assert prefix_matches(new, result)  # the rewritten path matches the new prefix...
    assert result[len(new) :] == rest  # ...followed by exactly what followed the old one


@given(prefix=PATHS, rest=PATHS)
def test_replacing_a_prefix_with_itself_changes_nothing(prefix, rest):
    path = normalize_prefix(prefix) + rest

    assert replace_prefix(path, normalize_prefix(prefix), prefix) == path


def test_parse_query_first_value_wins_and_names_are_case_sensitive():
    assert parse_query("a=1&A=2&a=3&flag&=x&b=") == {
        "a": "1",
        "A": "2",
        "flag": "",
        "": "x",
        "b": "",
    }


def test_parse_query_percent_decodes_but_keeps_plus():
    assert parse_query("q=a%20b&r=a+b&%6Eame=v") == {"q": "a b", "r": "a+b", "name": "v"}


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=5))
def test_parse_query_reads_back_what_was_encoded(values):
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in values.items())

    assert parse_query(encoded) == values


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("web", ("web", None)),
        ("web:8080", ("web", 8080)),
        ("[::1]:443", ("::1", 443)),
        ("[fd00::1]", ("fd00::1", None)),
        ("web:", ("web", None)),
        ("web:http", ("web", None)),
        ("::1", ("::1", None)),  # unbracketed IPv6 has no port
    ],
)
def test_split_authority(authority, expected):
    assert split_authority(authority) == expected


@pytest.mark.parametrize(
    ("host", "port", "scheme", "expected"),
    [
        ("web", 80, "http", "web"),
        ("web", 443, "https", "web"),
        ("web", 443, "http", "web:443"),
        ("web", 80, "https", "web:80"),
        ("web", 8080, "http", "web:8080"),
        ("::1", 8080, "http", "[::1]:8080"),
        ("web", None, "http", "web"),
    ],
)
def test_join_authority_omits_default_ports(host, port, scheme, expected):
    assert join_authority(host, port, scheme) == expected

"""nodemesh.authz.paths: one spelling per path, so a path rule cannot be dodged."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodemesh.authz import PathError, normalize_path, normalize_target

# Every shape below reaches /admin on a common server; each must normalize to /admin.
ADMIN_DISGUISES = [
    "/admin",
    "//admin",
    "///admin",
    "/./admin",
    "/public/../admin",
    "/public/./../admin",
    "/a/b/../../admin",
    "/../admin",
    "/../../admin",
    "/%61dmin",
    "/%61%64%6D%69%6E",
    "/%2e%2e/admin",
    "/%2E%2E/admin",
    "/.%2e/admin",
    "/public/%2e%2e/admin",
    "/public/%2E/../admin",
    "/a//../admin",
    "//public//..//admin",
    "/admin?x=1",
    "/admin?next=/../public",
]


@pytest.mark.parametrize("raw", ADMIN_DISGUISES)
def test_disguised_paths_normalize_to_the_one_spelling(raw):
    assert normalize_path(raw) == "/admin"


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("/", "/"),
        ("/a/b/", "/a/b/"),  # a trailing slash is kept: /admin/ is not /admin
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/..", "/"),
        ("/..", "/"),
        ("/ADMIN", "/ADMIN"),  # case-sensitive, as Istio
        ("/admin;jsessionid=1", "/admin;jsessionid=1"),  # path parameters are kept
        ("/a/%3a%7E%41", "/a/%3A~A"),  # hex upper-cased, unreserved decoded
        ("/%252e%252e/admin", "/%252e%252e/admin"),  # one decoding pass only
        ("/a/%C3%A9", "/a/%C3%A9"),  # non-ASCII stays encoded
        ("/...", "/..."),
        ("/..a/b", "/..a/b"),
        ("/a?", "/a"),
        ("*", "*"),  # OPTIONS *
    ],
)
def test_normal_forms(raw, normalized):
    assert normalize_path(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/admin%2Fusers", "contains an encoded '/' (%2F)"),
        ("/admin%2fusers", "contains an encoded '/' (%2F)"),
        ("/public%2F..%2Fadmin", "contains an encoded '/' (%2F)"),
        ("/admin%5Cusers", "contains an encoded '\\' (%5C)"),
        ("/admin%5cusers", "contains an encoded '\\' (%5C)"),
        ("/admin%00", "contains an encoded NUL (%00)"),
        ("/admin\\users", "contains a backslash, which servers disagree about"),
        ("/admin\x00", "contains a space, control or non-ASCII character; percent-encode it"),
        ("/ad min", "contains a space, control or non-ASCII character; percent-encode it"),
        ("/admin\r\n", "contains a space, control or non-ASCII character; percent-encode it"),
        ("/ädmin", "contains a space, control or non-ASCII character; percent-encode it"),
        ("/admin%", "contains a '%' not followed by two hex digits"),
        ("/admin%4", "contains a '%' not followed by two hex digits"),
        ("/admin%zz", "contains a '%' not followed by two hex digits"),
        ("/admin#frag", "contains a fragment ('#'), which clients must not send"),
        ("admin", "does not start with '/' (only origin-form request targets are routed)"),
        (
            "http://cart/admin",
            "does not start with '/' (only origin-form request targets are routed)",
        ),
        ("", "does not start with '/' (only origin-form request targets are routed)"),
    ],
)
def test_refused_shapes_raise_a_typed_error_that_never_echoes_the_path(raw, reason):
    with pytest.raises(PathError) as caught:
        normalize_path(raw)
    assert caught.value.reason == reason
    assert "admin" not in str(caught.value)
    assert "RFC 3986" in str(caught.value)  # and says what to do instead


def test_the_query_is_not_checked_and_is_forwarded_as_sent():
    assert normalize_path("/a?b=%2F\\ x") == "/a"
    assert normalize_target("/x/../a?b=%2F&c=/../d") == "/a?b=%2F&c=/../d"
    assert normalize_target("//a") == "/a"
    assert normalize_target("/a?") == "/a?"


# --- properties -----------------------------------------------------------------------------------

_ALL_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_UNRESERVED = "abcXYZ019-._~"
_segment = st.text(alphabet=_UNRESERVED + "!$&'()*+,;=:@", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)
_canonical = st.lists(_segment, max_size=5).map(lambda segs: "/" + "/".join(segs))


def _encode(char: str, upper: bool) -> str:
    escape = f"%{ord(char):02x}"
    return escape.upper() if upper else escape


@st.composite
def _disguised(draw) -> tuple[str, str]:
    """A canonical path and the same path under random dodges."""
    segments = draw(st.lists(_segment, max_size=5))
    canonical = "/" + "/".join(segments)
    out = []
    for segment in segments:
        for _ in range(draw(st.integers(0, 2))):  # detours that come back
            out.append(draw(st.sampled_from([".", "%2e", "%2E", "x/..", "%2e/x/%2E."])))
        chars = [
            _encode(c, draw(st.booleans())) if c in _UNRESERVED and draw(st.booleans()) else c
            for c in segment
        ]
        out.append("".join(chars))
    slashes = [draw(st.sampled_from(["/", "//", "///"])) for _ in out]
    disguised = "".join(s + part for s, part in zip(slashes, out, strict=True)) or "/"
    if draw(st.booleans()):
        disguised += "?" + draw(st.text(alphabet="/.%2Fa=&", max_size=8))
    return canonical, disguised


@settings(max_examples=500, deadline=None)
@given(_disguised())
def test_every_disguise_of_a_path_normalizes_to_it(pair):
    canonical, disguised = pair
    assert normalize_path(disguised) == normalize_path(canonical) == canonical


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="/.%2eEfFaA5cC0~\\?#x", max_size=20).map(lambda s: "/" + s))
def test_any_input_is_refused_or_canonical(raw):
    try:
        path = normalize_path(raw)
    except PathError:
        return
    assert path.startswith("/")
    assert "//" not in path
    assert not {".", ".."} & set(path.split("/"))
    assert "?" not in path and "\\" not in path
    for digits in re.findall(r"%(..)", path):  # escapes left: upper-case, never unreserved
        assert digits == digits.upper() and chr(int(digits, 16)) not in _ALL_UNRESERVED
    assert normalize_path(path) == path  # idempotent: the waypoint may normalize twice

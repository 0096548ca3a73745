"""Codes, levels, suppression and the failure threshold."""

from __future__ import annotations

import pytest

from controller.analyze import CODES, Finding, Level, Suppression, fails
from controller.analyze.findings import unsuppressed

WARN = Finding("NM0101", "AuthorizationPolicy", "shop", "a", "m")
ERR = Finding("NM0201", "HTTPRoute", "shop", "r", "m")


def test_a_finding_must_use_a_listed_code():
    with pytest.raises(ValueError, match="not in the CODES table"):
        Finding("NM9999", "Pod", "shop", "a", "m")


def test_codes_are_unique_and_shaped_like_istioctls():
    assert all(len(code) == 6 and code.startswith("NM") for code in CODES)
    assert len({c.title for c in CODES.values()}) == len(CODES)


@pytest.mark.parametrize(
    ("threshold", "findings", "expected"),
    [
        (Level.ERROR, [WARN], False),
        (Level.WARNING, [WARN], True),
        (Level.ERROR, [WARN, ERR], True),
        (Level.INFO, [], False),
    ],
)
def test_fails_at_or_above_the_threshold(threshold, findings, expected):
    assert fails(findings, threshold) is expected


def test_level_parse_is_case_insensitive_and_says_what_is_allowed():
    assert Level.parse("warning") is Level.WARNING
    with pytest.raises(ValueError, match="Error, Warning or Info"):
        Level.parse("fatal")


def test_suppress_a_code_everywhere_or_for_one_object():
    assert unsuppressed([WARN, ERR], [Suppression.parse("nm0101")]) == [ERR]
    only_b = Suppression.parse("NM0101=AuthorizationPolicy shop/b")
    assert unsuppressed([WARN], [only_b]) == [WARN]
    assert unsuppressed([WARN, ERR], [Suppression.parse("NM0*=* shop/*")]) == []


def test_suppressing_an_unknown_code_is_refused():
    with pytest.raises(ValueError, match="no finding code matches"):
        Suppression.parse("IST0101")


def test_the_anchor_names_the_docs_heading():
    assert WARN.anchor == "docs/analyze.md#nm0101"

"""HTTPRouteMatch: compiled once per push, then tested against every request.

A match ANDs its parts (path, method, every header match, every query match); a rule ORs its
matches. Each compiled `RequestMatch` also knows its Gateway API precedence (`specificity`): exact
path, then the longest prefix, then a method, then the most header matches, then the most query
matches. Gateway API leaves regex paths to the implementation; nodemesh ranks them as Istio does,
below every prefix (Exact > PathPrefix > RegularExpression), the longer pattern first.

Regular expressions use Python's `re` with full-match semantics (a header regex "a.*" does not match
"ba"), are compiled here once, and are bounded in length. The bound limits compile cost and the
size of what an author can express; it does not make matching linear (Python's engine backtracks),
so patterns stay in the hands of route authors, who are trusted with their own Service's traffic.

A header sent several times is matched against its values joined with "," (RFC 9110's equivalent
single field, what Envoy matches against); a repeated query parameter is matched by its first value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Any

from waypoint.messages import RequestHead
from waypoint.routing.errors import FieldError
from waypoint.routing.urls import normalize_prefix, parse_query, prefix_matches

MAX_PATTERN_LENGTH = 1024


class PathKind(IntEnum):
    """Path match types, valued by precedence rank (higher wins)."""

    REGULAR_EXPRESSION = 1
    PATH_PREFIX = 2
    EXACT = 3


_PATH_KINDS = {
    "Exact": PathKind.EXACT,
    "PathPrefix": PathKind.PATH_PREFIX,
    "RegularExpression": PathKind.REGULAR_EXPRESSION,
}


class RequestView:
    """One request's fields as matches read them, each derived at most once per request."""

    def __init__(self, head: RequestHead) -> None:
        self.head = head
        self.path = head.path_only

    @cached_property
    def query(self) -> dict[str, str]:
        return parse_query(self.head.query)

    def header(self, name: str) -> str | None:
        values = self.head.header_values(name)
        return ",".join(values) if values else None


@dataclass(frozen=True)
class PathMatch:
    kind: PathKind
    value: str  # Exact: the path; PathPrefix: normalized ("/" is ""); regex: the pattern
    pattern: re.Pattern[str] | None = None

    def matches(self, path: str) -> bool:
        if self.kind is PathKind.EXACT:
            return path == self.value
        if self.kind is PathKind.PATH_PREFIX:
            return prefix_matches(self.value, path)
        assert self.pattern is not None
        return self.pattern.fullmatch(path) is not None


@dataclass(frozen=True)
class ValueMatch:
    """A header or query parameter match: the named value equals `value`, or fully matches."""

    name: str  # header names lower-case; query parameter names as written
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, actual: str | None) -> bool:
        if actual is None:
            return False
        if self.pattern is None:
            return actual == self.value
        return self.pattern.fullmatch(actual) is not None


@dataclass(frozen=True)
class RequestMatch:
    path: PathMatch
    method: str | None = None
    headers: tuple[ValueMatch, ...] = ()
    query: tuple[ValueMatch, ...] = ()

    def matches(self, request: RequestView) -> bool:
        return (
            (self.method is None or request.head.method == self.method)
            and self.path.matches(request.path)
            and all(h.matches(request.header(h.name)) for h in self.headers)
            and all(q.matches(request.query.get(q.name)) for q in self.query)
        )

    @property
    def specificity(self) -> tuple[int, ...]:
        """Gateway API's precedence as a sort key: smaller sorts first (wins)."""
        return (
            -int(self.path.kind),
            -len(self.path.value),
            0 if self.method else 1,
            -len(self.headers),
            -len(self.query),
        )

    @property
    def prefix(self) -> str | None:
        """The normalized prefix, for ReplacePrefixMatch; None unless a PathPrefix match."""
        return self.path.value if self.path.kind is PathKind.PATH_PREFIX else None


def compile_match(data: Mapping[str, Any], field: str) -> RequestMatch:
    """One normalized HTTPRouteMatch; `field` is its path for error messages."""
    return RequestMatch(
        path=_compile_path(data["path"], f"{field}.path"),
        method=data.get("method"),
        headers=_compile_values(data.get("headers", ()), f"{field}.headers", fold_case=True),
        query=_compile_values(data.get("queryParams", ()), f"{field}.queryParams", fold_case=False),
    )


def _compile_path(data: Mapping[str, Any], field: str) -> PathMatch:
    kind_name, value = data["type"], data["value"]
    kind = _PATH_KINDS.get(kind_name)
    if kind is None:
        raise FieldError(f"{field}.type", f"unknown path match type {kind_name!r}")
    if kind is PathKind.REGULAR_EXPRESSION:
        return PathMatch(kind, value, compile_pattern(value, f"{field}.value"))
    if kind is PathKind.PATH_PREFIX:
        value = normalize_prefix(value)
    return PathMatch(kind, value)


def _compile_values(entries: Any, field: str, *, fold_case: bool) -> tuple[ValueMatch, ...]:
    """Header or query matches; a repeated name keeps its first entry, as Gateway API says."""
    compiled: dict[str, ValueMatch] = {}
    for index, entry in enumerate(entries):
        name = entry["name"].lower() if fold_case else entry["name"]
        pattern = None
        if entry.get("type", "Exact") == "RegularExpression":
            pattern = compile_pattern(entry["value"], f"{field}[{index}].value")
        compiled.setdefault(name, ValueMatch(name, entry["value"], pattern))
    return tuple(compiled.values())


def compile_pattern(pattern: str, field: str) -> re.Pattern[str]:
    """A route author's regular expression, compiled once, or a FieldError saying what is wrong."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise FieldError(
            field,
            f"regular expression is {len(pattern)} characters, more than {MAX_PATTERN_LENGTH}",
            "shorten it, or split the match into several rules",
        )
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        raise FieldError(
            field,
            f"regular expression {pattern!r} does not compile: {error}",
            "use Python re syntax; it must match the whole value",
        ) from None

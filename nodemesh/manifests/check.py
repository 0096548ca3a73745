"""Field paths and the problem collector every validator reports into.

Validators never raise on a bad field: they record a `Problem` (path + message) in a `Check` and
carry on, so one run reports every mistake in a document. The typed getters (`string`, `integer`,
`mapping`, `each_mapping`, ...) return the field's value when it has the right type and None
otherwise (absent, null, or wrong; the wrong case has been recorded), which keeps validators to
straight-line code.

Paths follow kubectl's style: `spec.containers[0].ports[1].containerPort`; keys that are not plain
identifiers are bracketed and quoted: `metadata.labels['app.kubernetes.io/name']`.

Strict field checking (`Check.fields`) refuses keys that are not fields of the object, the way
`kubectl apply --validate=strict` does, with a did-you-mean hint. Which Kubernetes fields are
accepted but ignored, and which are refused with a reason, is data (`FieldTables`) handed in by the
caller; kinds.py holds the one table nodemesh uses.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def child(path: str, key: object) -> str:
    """Path of `key` inside the object at `path` ("" is the document root)."""
    if isinstance(key, str) and _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def item(path: str, index: int) -> str:
    """Path of the `index`th element of the list at `path`."""
    return f"{path}[{index}]"


def describe(value: object) -> str:
    """Name a value's JSON type for messages: "integer 8080", "a list", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {_short(value)!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime.date):
        return f"timestamp {value.isoformat()}"
    return f"YAML {type(value).__name__}"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quote_hint(value: object) -> str:
    """YAML reads `8080`, `yes`, `1.0`, `2024-01-01` as non-strings; say how to keep them text."""
    if isinstance(value, int | float | datetime.date):
        return " (quote it if you meant the string)"
    return ""


@dataclass(frozen=True)
class FieldTables:
    """Per object type ("Container"): fields accepted and ignored, and fields refused with why."""

    ignored: Mapping[str, frozenset[str]] = field(default_factory=dict)
    unsupported: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    field: str | None
    message: str


class Check:
    """Collects the problems of one object; see the module docstring."""

    def __init__(self, tables: FieldTables) -> None:
        self.tables = tables
        self.problems: list[Problem] = []

    def fail(self, path: str | None, message: str) -> None:
        self.problems.append(Problem(path or None, message))

    # ---- strict fields ------------------------------------------------------------------------

    def fields(
        self, obj: Mapping[Any, Any], path: str, type_name: str, used: Collection[str]
    ) -> None:
        """Refuse keys of `obj` that are neither used by nodemesh nor known-and-ignored."""
        ignored = self.tables.ignored.get(type_name, frozenset())
        unsupported = self.tables.unsupported.get(type_name, {})
        for key, value in obj.items():
            if key in used or key in ignored:
                continue
            if key in unsupported:
                if value not in (None, [], {}):
                    self.fail(child(path, key), unsupported[key])
                continue
            self.fail(child(path, key), _unknown_field(key, used, ignored, unsupported))

    # ---- typed getters: the value if well-typed, else None (and a problem unless just absent) ----

    def mapping(
        self, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> dict[str, Any] | None:
        value = self._present(obj, key, path, required)
        if value is None or self._expect(value, Mapping, child(path, key), "an object"):
            return value
        return None

    def sequence(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        min_items: int = 0,
    ) -> list[Any] | None:
        value = self._present(obj, key, path, required)
        if value is None or not self._expect(value, list, child(path, key), "a list"):
            return None
        if len(value) < min_items:
            self.fail(child(path, key), f"must have at least {min_items} item(s)")
        return value

    def each_mapping(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        min_items: int = 0,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (path, element) for each object in the list `obj[key]`; report non-objects."""
        elements = self.sequence(obj, key, path, required=required, min_items=min_items) or []
        for index, element in enumerate(elements):
            element_path = item(child(path, key), index)
            if self._expect(element, Mapping, element_path, "an object"):
                yield element_path, element

    def string(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        rule: Callable[[str], str | None] | None = None,
    ) -> str | None:
        """A string field; `rule` returns a message when the text is malformed (see names.py)."""
        value = self._present(obj, key, path, required)
        if value is None:
            return None
        return self.text(value, child(path, key), rule=rule)

    def boolean(self, obj: Mapping[str, Any], key: str, path: str) -> bool | None:
        """A true/false field; YAML's quoted "true" is a string and refused, as Kubernetes does."""
        value = self._present(obj, key, path, False)
        if value is None or not self._expect(value, bool, child(path, key), "true or false"):
            return None
        return value

    def text(
        self, value: object, path: str, *, rule: Callable[[str], str | None] | None = None
    ) -> str | None:
        """Check that a value (a list element, a map value) is a string obeying `rule`."""
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {describe(value)}{_quote_hint(value)}")
            return None
        problem = rule(value) if rule else None
        if problem:
            self.fail(path, problem)
            return None
        return value

    def integer(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        low: int | None = None,
        high: int | None = None,
    ) -> int | None:
        value = self._present(obj, key, path, required)
        if value is None:
            return None
        return self.whole(value, child(path, key), low=low, high=high)

    def whole(
        self, value: object, path: str, *, low: int | None = None, high: int | None = None
    ) -> int | None:
        """Check that a value is an integer (not a boolean, not 8080.0) within [low, high]."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"must be an integer, got {describe(value)}")
            return None
        if low is not None and high is not None and not low <= value <= high:
            self.fail(path, f"must be between {low} and {high}, got {value}")
        elif low is not None and value < low:
            self.fail(path, f"must be at least {low}, got {value}")
        elif high is not None and value > high:
            self.fail(path, f"must be at most {high}, got {value}")
        else:
            return value
        return None

    def int_or_string(
        self,
        value: object,
        path: str,
        *,
        low: int | None = None,
        high: int | None = None,
        rule: Callable[[str], str | None] | None = None,
    ) -> int | str | None:
        """Kubernetes' IntOrString (targetPort, probe ports, maxSurge); each form checked."""
        if isinstance(value, str):
            return self.text(value, path, rule=rule)
        if isinstance(value, int) and not isinstance(value, bool):
            return self.whole(value, path, low=low, high=high)
        self.fail(path, f"must be an integer or a string, got {describe(value)}")
        return None

    def choice(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        choices: Collection[str],
        *,
        required: bool = False,
    ) -> str | None:
        """A string field from a fixed set (Kubernetes enums are case-sensitive)."""
        value = self.string(obj, key, path, required=required)
        if value is None or value in choices:
            return value
        self.fail(child(path, key), f"must be one of {', '.join(choices)}, got {value!r}")
        return None

    def strings(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        min_items: int = 0,
        rule: Callable[[str], str | None] | None = None,
    ) -> list[str] | None:
        """A list of strings; each element is checked with `rule`. None if any element is bad."""
        values = self.sequence(obj, key, path, required=required, min_items=min_items)
        if values is None:
            return None
        list_path = child(path, key)
        good = [self.text(value, item(list_path, i), rule=rule) for i, value in enumerate(values)]
        return None if any(value is None for value in good) else values

    def string_map(
        self,
        obj: Mapping[str, Any],
        key: str,
        path: str,
        *,
        key_rule: Callable[[str], str | None] | None = None,
        value_rule: Callable[[str], str | None] | None = None,
    ) -> dict[str, str] | None:
        """A string-to-string map such as labels; keys and values are checked by their rules."""
        values = self.mapping(obj, key, path)
        if values is None:
            return None
        map_path = child(path, key)
        for map_key, map_value in values.items():
            key_path = child(map_path, map_key)
            if not isinstance(map_key, str):
                self.fail(key_path, f"keys must be strings, got {describe(map_key)}")
            elif self.text(map_key, key_path, rule=key_rule) is not None:
                self.text(map_value, key_path, rule=value_rule)
        return values

    # ---- helpers --------------------------------------------------------------------------------

    def _present(self, obj: Mapping[str, Any], key: str, path: str, required: bool) -> Any:
        """The field's value; None when absent or null (Kubernetes treats both as unset)."""
        value = obj.get(key)
        if value is None and required:
            self.fail(child(path, key), "required field is missing")
        return value

    def _expect(self, value: object, kind: type, path: str, what: str) -> bool:
        if isinstance(value, kind):
            return True
        hint = ' (write a YAML list: ["a", "b"])' if kind is list and isinstance(value, str) else ""
        self.fail(path, f"must be {what}, got {describe(value)}{hint}")
        return False


def set_default(obj: dict[str, Any], key: str, value: Any) -> None:
    """Normalization helper: fill `key` when it is absent or null (Kubernetes treats both alike)."""
    if obj.get(key) is None:
        obj[key] = value


def _unknown_field(
    key: object, used: Collection[str], ignored: Collection[str], unsupported: Collection[str]
) -> str:
    if not isinstance(key, str):
        return f"unknown field (field names are strings, got {describe(key)})"
    known = sorted({*used, *ignored, *unsupported})
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown field; did you mean {close[0]!r}?"
    return f"unknown field; fields nodemesh reads here: {', '.join(sorted(used))}"

"""Helpers for the manifest tests: build an object, change one field, see what the validator says.

Cases are written as (path to change, new value, expected field, expected message), where paths use
the same syntax as error fields ("spec.containers[0].command"), so a table reads like the errors a
user would see. A new value of None writes YAML null, which Kubernetes (and nodemesh) reads as
"field not set", so None cases test missing fields.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from nodemesh.manifests.errors import ManifestErrors
from nodemesh.manifests.load import parse_documents

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['([^']*)'\]|\.")

Problems = list[tuple[str | None, str]]


def _steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for name, index, quoted in _STEP.findall(path):
        if name or quoted:
            steps.append(name or quoted)
        elif index:
            steps.append(int(index))
    return steps


def mutate(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of obj with the field at `path` set to value (appended at index len(list))."""
    result = copy.deepcopy(obj)
    *parents, last = _steps(path)
    target: Any = result
    for step in parents:
        if isinstance(step, str) and step not in target:
            target[step] = {}
        target = target[step]
    if isinstance(last, int) and last == len(target):
        target.append(value)
    else:
        target[last] = value
    return result


def problems(text: str, source: str = "test.yaml") -> Problems:
    """(field, message) of every error parse_documents raises for text; [] if it parses."""
    try:
        parse_documents(text, source)
    except ManifestErrors as errors:
        return [(error.field, error.message) for error in errors.errors]
    return []


def dump(*objs: Any) -> str:
    return yaml.safe_dump_all(objs, sort_keys=False)


@pytest.fixture
def problems_of() -> Callable[..., Problems]:
    """(field, message) of each error for a YAML text: problems_of(text, source="test.yaml")."""
    return problems


@pytest.fixture
def check_case() -> Callable[[dict[str, Any], str, Any], Problems]:
    """Problems of `base` with one field changed."""
    return lambda base, path, value: problems(dump(mutate(base, path, value)))


@pytest.fixture
def normalized() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The normalized object of a single valid document."""

    def run(obj: dict[str, Any]) -> dict[str, Any]:
        (manifest,) = parse_documents(dump(obj), "test.yaml")
        return manifest.obj

    return run

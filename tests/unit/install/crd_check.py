"""Checks a custom resource against our CRDs as the API server would, without an API server.

- `schema_errors`: the openAPIV3Schema with `jsonschema` (types, enums, patterns, bounds,
  required, anyOf/oneOf); `x-kubernetes-*` keys are unknown to it and ignored.
- `cel_errors`: every `x-kubernetes-validations` rule, evaluated with cel-python on the value at
  its node (`self`), and `x-kubernetes-list-type: map` key uniqueness (with the keys' defaults).
- `structural_problems`: the rules that make a schema structural (a `type` on every node outside
  anyOf/oneOf/allOf/not, and nothing but value validations inside them), which the API server
  enforces when the CRD is created.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema

_LOGIC = ("anyOf", "oneOf", "allOf", "not")
# Inside a logical junctor a structural schema may only validate values.
_NOT_IN_LOGIC = {"type", "description", "default", "additionalProperties", "nullable", "title"}


def schema_errors(schema: dict, instance: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    )


def cel_errors(schema: dict, instance: Any, path: str = "") -> list[str]:
    return list(_cel(schema, instance, path))


def _cel(schema: dict, value: Any, path: str) -> Iterator[str]:
    import celpy

    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations", ()):
        env = celpy.Environment()
        program = env.program(env.compile(rule["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and result):
            yield f"{path or '<root>'}: {rule['message']}"
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                yield from _cel(sub, value[key], f"{path}.{key}".lstrip("."))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                yield from _cel(extra, item, f"{path}.{key}".lstrip("."))
    elif isinstance(value, list) and "items" in schema:
        yield from _list_map_keys(schema, value, path)
        for index, item in enumerate(value):
            yield from _cel(schema["items"], item, f"{path}[{index}]")


def _list_map_keys(schema: dict, value: list, path: str) -> Iterator[str]:
    if schema.get("x-kubernetes-list-type") != "map":
        return
    keys = schema["x-kubernetes-list-map-keys"]
    props = schema["items"]["properties"]
    seen = set()
    for index, item in enumerate(value):
        key = tuple(item.get(k, props[k].get("default")) for k in keys)
        if key in seen:
            yield f"{path}[{index}]: Duplicate value: {dict(zip(keys, key, strict=True))}"
        seen.add(key)


def structural_problems(schema: dict, path: str = "", in_logic: bool = False) -> list[str]:
    problems = []
    if in_logic:
        problems += [f"{path}: {key} inside a junctor" for key in _NOT_IN_LOGIC & set(schema)]
    elif "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path or '<root>'}: no type")
    for key, sub in (schema.get("properties") or {}).items():
        problems += structural_problems(sub, f"{path}.{key}", in_logic)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            problems += structural_problems(schema[key], f"{path}.{key}", in_logic)
    for key in _LOGIC:
        subs = schema.get(key)
        for sub in subs if isinstance(subs, list) else [subs] if subs else []:
            problems += structural_problems(sub, f"{path}.{key}", True)
    if schema.get("x-kubernetes-list-type") == "map":
        item = schema["items"]
        for key in schema["x-kubernetes-list-map-keys"]:
            if key not in item.get("required", ()) and "default" not in item["properties"][key]:
                problems.append(f"{path}: list-map key {key} neither required nor defaulted")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: both properties and additionalProperties")
    return problems

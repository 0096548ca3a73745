"""The CRDs' schemas accept what nodemesh accepts and refuse what it refuses.

Every nodemesh object in examples/ and in docs/traffic-policy.md must pass the CRD schema and its
CEL rules; each broken variant must fail the schema (or a CEL rule) AND nodemesh's own validator,
so the two cannot drift apart silently.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from nodemesh.install import crds
from nodemesh.manifests.validate import validate_object
from tests.unit.install.crd_check import cel_errors, schema_errors, structural_problems

ROOT = Path(__file__).resolve().parents[3]
OUR_KINDS = {(spec.api_version, spec.kind) for spec in crds.crd_specs()}


def _ours(docs) -> list[dict]:
    return [
        d for d in docs if isinstance(d, dict) and (d.get("apiVersion"), d.get("kind")) in OUR_KINDS
    ]


def example_objects() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        for index, doc in enumerate(_ours(yaml.safe_load_all(path.read_text()))):
            found.append((f"{path.relative_to(ROOT)}#{index}", doc))
    text = (ROOT / "docs" / "traffic-policy.md").read_text()
    for block, body in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.S)):
        for index, doc in enumerate(_ours(yaml.safe_load_all(body))):
            found.append((f"docs/traffic-policy.md block {block}#{index}", doc))
    return found


EXAMPLES = example_objects()


def errors(doc: dict) -> list[str]:
    schema = crds.schema_of(doc["apiVersion"], doc["kind"])
    assert schema is not None
    return schema_errors(schema, doc) + cel_errors(schema, doc)


def validator_refuses(doc: dict) -> bool:
    manifest, problems = validate_object(copy.deepcopy(doc), "test", 1, None)
    return manifest is None and bool(problems)


def test_examples_cover_every_kind():
    assert {(d["apiVersion"], d["kind"]) for _, d in EXAMPLES} >= {
        ("security.nodemesh.io/v1", "AuthorizationPolicy"),
        ("networking.nodemesh.io/v1", "TrafficPolicy"),
    }


@pytest.mark.parametrize(("where", "doc"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_example_is_accepted(where, doc):
    pytest.importorskip("celpy")
    assert errors(doc) == [], where


@pytest.mark.parametrize("spec", crds.crd_specs(), ids=lambda s: s.kind)
def test_schema_is_structural(spec):
    schema = crds.schema_of(spec.api_version, spec.kind)
    assert structural_problems(schema) == []


def test_structural_check_can_fail():
    assert structural_problems({"type": "object", "properties": {"a": {"enum": ["x"]}}})
    assert structural_problems({"type": "string", "anyOf": [{"type": "string"}]})


# ---- broken objects: each must be refused by the schema and by nodemesh's validator -------------

TRAFFIC = {
    "apiVersion": "networking.nodemesh.io/v1",
    "kind": "TrafficPolicy",
    "metadata": {"name": "reviews", "namespace": "bookinfo"},
    "spec": {
        "targetRefs": [{"group": "", "kind": "Service", "name": "reviews"}],
        "retries": {"attempts": 3, "retryOn": ["5xx"], "backoff": {"baseInterval": "50ms"}},
        "faults": {"abort": {"percentage": 1, "httpStatus": 503}},
        "rateLimit": {"maxTokens": 10, "fillInterval": "1s"},
    },
}
AUTHZ = {
    "apiVersion": "security.nodemesh.io/v1",
    "kind": "AuthorizationPolicy",
    "metadata": {"name": "p", "namespace": "demo"},
    "spec": {
        "selector": {"matchLabels": {"app": "hello"}},
        "action": "DENY",
        "rules": [
            {
                "from": [{"source": {"principals": ["cluster.local/ns/demo/sa/client"]}}],
                "to": [{"operation": {"ports": ["8080"], "paths": ["/admin*"]}}],
                "when": [{"key": "request.headers[x-user]", "values": ["bob"]}],
            }
        ],
    },
}
PEER = {
    "apiVersion": "security.nodemesh.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "strict", "namespace": "demo"},
    "spec": {
        "selector": {"matchLabels": {"app": "hello"}},
        "mtls": {"mode": "STRICT"},
        "portLevelMtls": {"8080": {"mode": "PERMISSIVE"}},
    },
}


def _set(doc: dict, dotted: str, value) -> dict:
    """A copy of `doc` with the field at `dotted` (`a.b.0.c`) set, or removed for ...."""
    out = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return out


@pytest.mark.parametrize("base", [TRAFFIC, AUTHZ, PEER], ids=lambda d: d["kind"])
def test_valid_bases(base):
    pytest.importorskip("celpy")
    assert errors(base) == []
    assert not validator_refuses(base)


# (name, base, field, value, text expected in one schema error)
SCHEMA_BROKEN = [
    ("retryOn-enum", TRAFFIC, "spec.retries.retryOn", ["5xx", "sometimes"], "is not one of"),
    ("targetRefs-missing", TRAFFIC, "spec.targetRefs", ..., "'targetRefs' is a required"),
    ("maxTokens-type", TRAFFIC, "spec.rateLimit.maxTokens", "ten", "is not of type 'integer'"),
    ("fillInterval-missing", TRAFFIC, "spec.rateLimit.fillInterval", ..., "'fillInterval' is a"),
    ("attempts-negative", TRAFFIC, "spec.retries.attempts", -1, "less than the minimum"),
    ("duration-fraction", TRAFFIC, "spec.retries.perTryTimeout", "1.5s", "does not match"),
    ("duration-zero", TRAFFIC, "spec.retries.perTryTimeout", "0s", "does not match '[1-9]'"),
    ("percentage-range", TRAFFIC, "spec.faults.abort.percentage", 150, "greater than the max"),
    ("percentage-istio-form", TRAFFIC, "spec.faults.abort.percentage", {"value": 1}, "of type"),
    (
        "abort-both-statuses",
        TRAFFIC,
        "spec.faults.abort",
        {"percentage": 1, "httpStatus": 503, "grpcStatus": "UNAVAILABLE"},
        "is valid under each of",
    ),
    ("abort-no-status", TRAFFIC, "spec.faults.abort", {"percentage": 1}, "is not valid under any"),
    (
        "grpcStatus-OK",
        TRAFFIC,
        "spec.faults.abort",
        {"percentage": 1, "grpcStatus": "OK"},
        "not one",
    ),
    ("faults-empty", TRAFFIC, "spec.faults", {}, "should be non-empty"),
    ("target-group", TRAFFIC, "spec.targetRefs.0.group", "apps", "is not one of"),
    ("target-kind", TRAFFIC, "spec.targetRefs.0.kind", "Deployment", "is not one of"),
    ("target-name", TRAFFIC, "spec.targetRefs.0.name", "9reviews", "does not match"),
    ("status-code-range", TRAFFIC, "spec.retries.retriableStatusCodes", [200], "less than the"),
    ("no-section", TRAFFIC, "spec", {"targetRefs": [{"name": "reviews"}]}, "not valid under any"),
    ("action-enum", AUTHZ, "spec.action", "allow", "is not one of"),
    ("action-custom", AUTHZ, "spec.action", "CUSTOM", "is not one of"),
    ("port-string", AUTHZ, "spec.rules.0.to.0.operation.ports", ["0"], "does not match"),
    ("port-int", AUTHZ, "spec.rules.0.to.0.operation.ports", [8080], "is not of type 'string'"),
    ("source-missing", AUTHZ, "spec.rules.0.from.0.source", ..., "'source' is a required"),
    ("when-key-missing", AUTHZ, "spec.rules.0.when.0.key", ..., "'key' is a required"),
    ("ip-block", AUTHZ, "spec.rules.0.from.0.source", {"ipBlocks": ["ten/8"]}, "does not match"),
    ("mtls-mode", PEER, "spec.mtls.mode", "strict", "is not one of"),
    ("selector-type", PEER, "spec.selector.matchLabels", ["app"], "is not of type 'object'"),
]


@pytest.mark.parametrize(
    ("base", "field", "value", "expected"),
    [case[1:] for case in SCHEMA_BROKEN],
    ids=[case[0] for case in SCHEMA_BROKEN],
)
def test_schema_refuses(base, field, value, expected):
    doc = _set(base, field, value)
    schema = crds.schema_of(doc["apiVersion"], doc["kind"])
    found = schema_errors(schema, doc)
    assert any(expected in line for line in found), found
    assert validator_refuses(doc), "the CRD refuses what nodemesh's validator accepts"


# Rules plain schema cannot express, checked by CEL on the API server.
CEL_BROKEN = [
    ("baseInterval-max", TRAFFIC, "spec.retries.backoff.baseInterval", "2h", "at most 1h"),
    ("fillInterval-min", TRAFFIC, "spec.rateLimit.fillInterval", "10ms", "at least 50ms"),
    (
        "maxInterval-below-base",
        TRAFFIC,
        "spec.retries.backoff",
        {"baseInterval": "1s", "maxInterval": "500ms"},
        "must not be shorter than baseInterval",
    ),
    (
        "codes-without-condition",
        TRAFFIC,
        "spec.retries.retriableStatusCodes",
        [503],
        "has no effect unless retryOn",
    ),
    (
        "condition-without-codes",
        TRAFFIC,
        "spec.retries.retryOn",
        ["retriable-status-codes"],
        "lists no codes",
    ),
    (
        "duplicate-target",
        TRAFFIC,
        "spec.targetRefs",
        [{"name": "reviews"}, {"group": "", "kind": "Service", "name": "reviews"}],
        "Duplicate value",
    ),
    ("source-empty", AUTHZ, "spec.rules.0.from.0.source", {"principals": []}, "must not be empty"),
    (
        "when-no-values",
        AUTHZ,
        "spec.rules.0.when.0",
        {"key": "request.headers[x]"},
        "must set values or notValues",
    ),
    (
        "selector-and-targetRefs",
        AUTHZ,
        "spec.targetRefs",
        [{"kind": "Service", "group": "", "name": "hello"}],
        "may not be set together",
    ),
    ("port-key", PEER, "spec.portLevelMtls", {"0": {"mode": "STRICT"}}, "port numbers 1-65535"),
    ("port-level-no-selector", PEER, "spec.selector", ..., "requires a selector"),
]


@pytest.mark.parametrize(
    ("base", "field", "value", "expected"),
    [case[1:] for case in CEL_BROKEN],
    ids=[case[0] for case in CEL_BROKEN],
)
def test_cel_refuses(base, field, value, expected):
    pytest.importorskip("celpy")
    doc = _set(base, field, value)
    schema = crds.schema_of(doc["apiVersion"], doc["kind"])
    assert schema_errors(schema, doc) == []  # only the CEL rule catches this one
    found = cel_errors(schema, doc)
    assert any(expected in line for line in found), found
    assert validator_refuses(doc), "the CRD refuses what nodemesh's validator accepts"

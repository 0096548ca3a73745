"""Whatever a user feeds `meshctl apply`, the parser answers with manifests or ManifestErrors.

Hypothesis drives three kinds of input: arbitrary text, text assembled from YAML's syntax, and
well-formed objects of every supported kind whose fields hold arbitrary JSON values (keys drawn
mostly from real field names, so the values reach deep validators). Anything that parses must also
be a fixed point: its normalized object parses again to itself.
"""

from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodemesh.manifests import kinds
from nodemesh.manifests.errors import ManifestErrors
from nodemesh.manifests.load import parse_documents

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIELD_NAMES = sorted({name for fields in kinds.USED_FIELDS.values() for name in fields})
YAML_TOKENS = [
    "\n", " ", "  ", "- ", ": ", "---\n", "...\n", "[", "]", "{", "}", ",", "'", '"', "#", "&a ",
    "*a", "<<: ", "? ", "|\n", ">\n", "!!binary ", "!!set ", "!!python/tuple ", "\t", "%YAML 1.1\n",
    "apiVersion: v1\n", "kind: Pod\n", "kind: List\n", "items:\n", "metadata:\n", "  name: x\n",
    "spec:\n", "containers:\n", "ports:\n", "8080", "2024-13-45", "1e999", "0x1F", "null", "yes",
    "~", "é", "\x00", "\ufeff",
]  # fmt: skip
WORDS = [
    "TCP", "http", "Always", "8080", "25%", "/", "/api", "ALLOW", "STRICT", "Exact", "PathPrefix",
    "RegularExpression", "1s", "GET", "app", "10.0.0.0/8", "metadata.name", "RequestMirror",
    "ClusterIP", "None", "RollingUpdate",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.sampled_from(WORDS)
)
KEYS = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)
KIND_SPECS = list(kinds.KINDS.values())


def parse_or_refuse(text: str, source: str) -> None:
    """The property: manifests that re-parse to themselves, or ManifestErrors, nothing else."""
    try:
        manifests = parse_documents(text, source)
    except ManifestErrors as errors:
        assert errors.errors
        assert all(str(error) for error in errors.errors)
        return
    for manifest in manifests:
        (again,) = parse_documents(yaml.safe_dump(manifest.obj), "again.yaml")
        assert again.obj == manifest.obj


@FUZZ
@given(st.text())
def test_arbitrary_text(text):
    parse_or_refuse(text, "fuzz.yaml")
    parse_or_refuse(text, "fuzz.json")


@FUZZ
@given(st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join))
def test_yaml_shaped_text(text):
    parse_or_refuse(text, "fuzz.yaml")


@FUZZ
@given(st.sampled_from(KIND_SPECS), VALUES, st.booleans())
def test_arbitrary_spec_values(spec, value, as_json):
    obj = {
        "apiVersion": spec.api_version,
        "kind": spec.kind,
        "metadata": {"name": "fuzz"},
        "spec": value,
    }
    if as_json:
        parse_or_refuse(json.dumps(obj), "fuzz.json")
    else:
        parse_or_refuse(yaml.safe_dump(obj), "fuzz.yaml")


@FUZZ
@given(st.sampled_from(KIND_SPECS), st.dictionaries(KEYS, VALUES, max_size=8))
def test_arbitrary_top_level_fields(spec, fields):
    obj = {**fields, "apiVersion": spec.api_version, "kind": spec.kind}
    parse_or_refuse(yaml.safe_dump(obj), "fuzz.yaml")


# Valid objects whose every field, in turn, gets replaced by an arbitrary value.
CONTAINER = {
    "name": "app",
    "command": ["./app"],
    "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    "ports": [{"containerPort": 8080, "name": "http"}],
    "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}, "periodSeconds": 5},
    "livenessProbe": {"tcpSocket": {"port": 8080}},
}
POD_SPEC = {"containers": [CONTAINER], "restartPolicy": "Always"}
HEADER = {"name": "x-mesh", "value": "1"}
ROUTE_RULE = {
    "matches": [{"path": {"value": "/api"}, "headers": [{"name": "x-v", "value": "2"}]}],
    "filters": [
        {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [HEADER]}},
        {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "m", "port": 80}}},
    ],
    "backendRefs": [{"name": "web", "port": 80, "weight": 1}],
    "timeouts": {"request": "1s"},
}
VALID = [
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": POD_SPEC},
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"app": "d"}},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": POD_SPEC},
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {
            "selector": {"app": "d"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    },
    {
        "apiVersion": "security.nodemesh.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "a"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "rules": [
                {
                    "from": [{"source": {"principals": ["p"], "ipBlocks": ["10.0.0.0/8"]}}],
                    "to": [{"operation": {"ports": ["80"], "methods": ["GET"]}}],
                    "when": [{"key": "source.ip", "values": ["10.0.0.1"]}],
                }
            ],
        },
    },
    {
        "apiVersion": "security.nodemesh.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "pa"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "mtls": {"mode": "STRICT"},
            "portLevelMtls": {8080: {"mode": "DISABLE"}},
        },
    },
    {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {
            "parentRefs": [{"name": "s", "kind": "Service", "group": ""}],
            "rules": [ROUTE_RULE],
        },
    },
]


def paths(value, prefix=()):
    """Every (key or index) path inside a JSON-like value."""
    steps = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for step, child in steps:
        yield (*prefix, step)
        yield from paths(child, (*prefix, step))


def replaced(obj, path, value):
    """A copy of obj with the value at path replaced (copying only along the path)."""
    if not path:
        return value
    head, *rest = path
    copy = list(obj) if isinstance(obj, list) else dict(obj)
    copy[head] = replaced(obj[head], rest, value)
    return copy


MUTATIONS = st.sampled_from(VALID).flatmap(
    lambda obj: st.tuples(st.just(obj), st.sampled_from(list(paths(obj))), VALUES)
)


def test_the_mutation_bases_are_valid():
    assert len(parse_documents(yaml.safe_dump_all(VALID), "valid.yaml")) == len(VALID)


@FUZZ
@given(MUTATIONS)
def test_any_field_of_a_valid_object_replaced_by_anything(case):
    obj, path, value = case
    parse_or_refuse(yaml.safe_dump(replaced(obj, path, value)), "fuzz.yaml")

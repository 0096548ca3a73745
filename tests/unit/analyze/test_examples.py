"""The sample files: each produces exactly its own finding; the shipped examples produce none."""

from __future__ import annotations

import pytest

from controller.analyze import CODES
from controller.analyze.inputs import Inputs, gather
from nodemesh.cli.waypoint_ops import enrolled_namespace, gateway_manifest
from tests.unit.analyze.helpers import EXAMPLES, analyze_paths, codes, findings_of

SAMPLES = sorted((EXAMPLES / "analyze").glob("nm*.yaml"))
# Only a running cluster shows these (nodes, agents, ready pods): test_cluster_checks covers them.
CLUSTER_ONLY = {"NM0303", "NM0401"}


def _code(path) -> str:
    return path.name.split("-", 1)[0].upper()


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_each_sample_produces_exactly_its_finding(path):
    found = analyze_paths(path)
    assert codes(found) == [_code(path)], [str(f.message) for f in found]
    assert found[0].origin.startswith(str(path))


def test_every_code_has_a_sample_or_is_cluster_only():
    sampled = {_code(path) for path in SAMPLES}
    assert sampled | CLUSTER_ONLY == set(CODES)
    assert not sampled & CLUSTER_ONLY


def test_hello_is_clean():
    assert analyze_paths(EXAMPLES / "hello") == []


def test_hello_l7_is_clean_with_the_waypoint_the_demo_gives_it():
    """As `meshctl demo` applies it: hello, the namespace's waypoint label and Gateway, policy."""
    base = gather([str(EXAMPLES / "hello"), str(EXAMPLES / "hello-l7")], None)
    assert base.findings == []
    namespace = enrolled_namespace(base.objects, "demo", "waypoint")
    gateway = gateway_manifest("demo", "waypoint")
    objects = [o for o in base.objects if o["kind"] != "Namespace"]
    inputs = Inputs(objects=[*objects, namespace.obj, gateway.obj])
    assert findings_of(inputs) == []


def test_hello_l7_without_its_waypoint_is_reported():
    found = analyze_paths(EXAMPLES / "hello", EXAMPLES / "hello-l7")
    assert codes(found) == ["NM0104"]

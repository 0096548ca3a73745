"""FROM and TO as typed, resolved to the original destination the capture hook would report."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.translate import translate
from nodemesh.trace.probe import (
    Probe,
    TraceError,
    parse_header,
    resolve_target,
    source_workload,
)
from tests.unit.trace.objects import MESH, TD, pod, svc

SNAPSHOT = translate(MESH, trust_domain=TD).snapshot


def target(text, port=None, source="shop/client", objects=MESH, snapshot=SNAPSHOT):
    return resolve_target(snapshot, objects, Probe(source, text, port=port))


@pytest.mark.parametrize(
    ("text", "port", "expected"),
    [
        ("web", None, ("198.19.0.10", 80, "Service shop/web")),  # its only port
        ("svc/web", None, ("198.19.0.10", 80, "Service shop/web")),
        ("shop/web", 80, ("198.19.0.10", 80, "Service shop/web")),
        ("web-1", None, ("198.18.2.3", 8080, "pod shop/web-1")),  # its one container port
        ("pod/legacy/old-1", 9090, ("198.18.2.7", 9090, "pod legacy/old-1")),
        ("198.18.2.7", 8080, ("198.18.2.7", 8080, "198.18.2.7")),
    ],
)
def test_targets_resolve_to_an_address_and_port(text, port, expected):
    resolved = target(text, port)
    assert (resolved.ip, resolved.port, resolved.label) == expected


def test_a_short_name_is_looked_up_in_froms_namespace_not_the_default():
    probe = Probe("legacy/outsider", "old", namespace="shop")
    assert resolve_target(SNAPSHOT, MESH, probe).label == "Service legacy/old"


@pytest.mark.parametrize(
    ("text", "port", "message"),
    [
        ("198.18.2.7", None, "needs --port"),
        ("client", None, "declares no container port; choose one with --port"),
        ("nothing", None, "no running pod or Service shop/nothing"),
        ("svc/web-1", None, "no Service shop/web-1"),
        ("pod/web", None, "no running pod shop/web"),
    ],
)
def test_unresolvable_targets_say_what_to_type(text, port, message):
    with pytest.raises(TraceError, match=message):
        target(text, port)


def test_a_name_that_is_both_a_pod_and_a_service_must_be_prefixed():
    objects = [*MESH, svc("web-1", "shop", "198.19.0.40", {"app": "web"})]
    snapshot = translate(objects, trust_domain=TD).snapshot
    with pytest.raises(TraceError, match="write pod/web-1 or svc/web-1"):
        target("web-1", objects=objects, snapshot=snapshot)
    assert target("svc/web-1", objects=objects, snapshot=snapshot).ip == "198.19.0.40"


def test_a_service_with_several_ports_needs_one_chosen():
    two = svc("two", "shop", "198.19.0.41", {"app": "web"})
    two["spec"]["ports"].append({"name": "b", "port": 81, "targetPort": 8080})
    objects = [*MESH, two]
    snapshot = translate(objects, trust_domain=TD).snapshot
    with pytest.raises(TraceError, match=r"ports \[80, 81\]; choose one with --port"):
        target("two", objects=objects, snapshot=snapshot)
    assert target("two", 81, objects=objects, snapshot=snapshot).port == 81


def test_a_headless_service_points_at_its_pods():
    headless = svc("hl", "shop", "None", {"app": "web"})
    objects = [*MESH, headless]
    snapshot = translate(objects, trust_domain=TD).snapshot
    with pytest.raises(TraceError, match="headless"):
        target("hl", objects=objects, snapshot=snapshot)


def test_a_pod_with_several_container_ports_needs_one_chosen():
    objects = [*MESH, pod("multi", "shop", "node1", "198.18.1.9", ports=(8080, 9090))]
    snapshot = translate(objects, trust_domain=TD).snapshot
    with pytest.raises(TraceError, match=r"declares ports \[8080, 9090\]"):
        target("multi", objects=objects, snapshot=snapshot)


def test_the_source_is_found_by_namespace_and_name():
    assert source_workload(SNAPSHOT, Probe("client", "web", namespace="shop")).uid == "uid-client"
    with pytest.raises(TraceError, match="no running pod default/client"):
        source_workload(SNAPSHOT, Probe("client", "web"))


names = st.text(st.sampled_from("abcXYZ-_0"), min_size=1, max_size=12)
values = st.text(st.sampled_from("ab c:/=9"), max_size=20)


@given(names, values)
def test_header_round_trip(name, value):
    assert parse_header(f"{name}: {value}") == (name.lower(), value.strip())


@pytest.mark.parametrize("text", ["no-colon", ": value", "  : x"])
def test_a_header_without_a_name_is_refused(text):
    with pytest.raises(TraceError, match="is not 'name: value'"):
        parse_header(text)

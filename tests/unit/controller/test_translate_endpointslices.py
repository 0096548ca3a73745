"""EndpointSlices in translate: the endpoints of Services without a selector, and only those."""

from __future__ import annotations

import pytest
import yaml

from controller.translate import translate
from nodemesh.manifests.errors import ManifestErrors
from nodemesh.manifests.load import parse_documents


def service(name: str = "ext-db", selector: dict | None = None) -> dict:
    spec = {"clusterIP": "198.19.0.12", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}
    if selector is not None:
        spec["selector"] = selector
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }


def endpoint_slice(name: str, *endpoints: dict, service_name: str = "ext-db", **fields) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "endpoints": list(endpoints),
        "ports": [{"name": "pg", "port": 15432, "protocol": "TCP"}],
        **fields,
    }


def at(address: str, **conditions) -> dict:
    return {"addresses": [address], "conditions": conditions}


def pod(name: str, ip: str, labels: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "labels": labels},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "ports": []}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def endpoints(*objects: dict, name: str = "ext-db") -> list[tuple[str, str, tuple]]:
    result = translate(objects)
    assert result.errors == ()
    found = result.snapshot.service("shop", name).endpoints
    return [(e.address, e.workload_uid, e.ports) for e in found]


def test_ready_endpoints_by_address_with_ports_mapped_by_name():
    slices = endpoint_slice("a", at("198.18.9.21", ready=True), at("198.18.9.20"), at("10.0.0.9"))

    assert endpoints(service(), slices) == [
        ("10.0.0.9", "endpointslice/shop/ext-db/10.0.0.9", ((5432, 15432),)),
        ("198.18.9.20", "endpointslice/shop/ext-db/198.18.9.20", ((5432, 15432),)),
        ("198.18.9.21", "endpointslice/shop/ext-db/198.18.9.21", ((5432, 15432),)),
    ]


def test_not_ready_endpoints_are_left_out_and_serving_terminating_ones_are_the_fallback():
    draining = at("198.18.9.22", ready=False, serving=True, terminating=True)
    gone = at("198.18.9.23", ready=False, serving=False, terminating=True)

    assert [e[0] for e in endpoints(service(), endpoint_slice("a", draining, gone))] == [
        "198.18.9.22"
    ]
    with_ready = endpoint_slice("a", draining, gone, at("198.18.9.24", ready=True))
    assert [e[0] for e in endpoints(service(), with_ready)] == ["198.18.9.24"]


def test_an_address_in_two_slices_is_one_endpoint_whatever_the_listing_order():
    first = endpoint_slice("a", at("198.18.9.21", ready=False))
    second = endpoint_slice("b", at("198.18.9.21", ready=True))
    second["ports"][0]["port"] = 15433

    one = endpoints(service(), first, second)
    other = endpoints(service(), second, first)

    assert (
        one == other == [("198.18.9.21", "endpointslice/shop/ext-db/198.18.9.21", ((5432, 15433),))]
    )


def test_an_endpoint_that_is_a_mesh_pod_keeps_the_pods_uid():
    db = pod("db-0", "198.18.1.11", {"app": "db"})
    by_ref = at("198.18.1.12", ready=True)
    by_ref["targetRef"] = {"kind": "Pod", "name": "db-1", "namespace": "shop", "uid": "uid-db-1"}

    found = endpoints(service(), db, endpoint_slice("a", at("198.18.1.11"), by_ref))

    assert [(a, uid) for a, uid, _ in found] == [
        ("198.18.1.11", "uid-db-0"),
        ("198.18.1.12", "uid-db-1"),
    ]


def test_ports_match_by_name_and_protocol_and_unmatched_ports_are_left_out():
    svc = service()
    svc["spec"]["ports"] = [
        {"name": "pg", "port": 5432, "protocol": "TCP"},
        {"name": "metrics", "port": 9187, "protocol": "TCP"},
    ]
    udp = endpoint_slice("a", at("198.18.9.20"))
    udp["ports"] = [{"name": "pg", "port": 15432, "protocol": "UDP"}]

    assert endpoints(svc, endpoint_slice("b", at("198.18.9.21")), udp) == [
        ("198.18.9.20", "endpointslice/shop/ext-db/198.18.9.20", ()),
        ("198.18.9.21", "endpointslice/shop/ext-db/198.18.9.21", ((5432, 15432),)),
    ]


def test_a_selector_service_takes_its_pods_and_ignores_its_slices():
    web = pod("web-0", "198.18.1.10", {"app": "web"})
    stale = endpoint_slice("web-x", at("198.18.1.99", ready=True), service_name="web")

    found = endpoints(service("web", {"app": "web"}), web, stale, name="web")

    assert [(a, uid) for a, uid, _ in found] == [("198.18.1.10", "uid-web-0")]


def test_fqdn_slices_are_passed_over_and_unlabelled_ones_are_errors():
    fqdn = endpoint_slice("a", at("db.example.com"), addressType="FQDN")
    unlabelled = endpoint_slice("b", at("198.18.9.20"))
    del unlabelled["metadata"]["labels"]

    result = translate([service(), fqdn, unlabelled])

    assert result.snapshot.service("shop", "ext-db").endpoints == ()
    [error] = result.errors
    assert (error.kind, error.name) == ("EndpointSlice", "b")
    assert "kubernetes.io/service-name" in error.message


def test_local_manifests_accept_the_same_slices_and_translate_alike():
    text = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: ext-db, namespace: shop}
spec:
  clusterIP: 198.19.0.12
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ext-db-1
  namespace: shop
  labels: {kubernetes.io/service-name: ext-db}
addressType: IPv4
endpoints:
  - addresses: ["198.18.9.20"]
    zone: zone-a
ports: [{name: pg, port: 15432}]
"""
    objects = [m.obj for m in parse_documents(text, "ext-db.yaml")]

    assert endpoints(*objects) == [
        ("198.18.9.20", "endpointslice/shop/ext-db/198.18.9.20", ((5432, 15432),))
    ]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda s: s["metadata"].pop("labels"), "kubernetes.io/service-name", "required"),
        (lambda s: s.update(addressType="FQDN"), "addressType", "FQDN endpoints are not"),
        (lambda s: s["endpoints"][0].update(addresses=["fe80::1"]), "addresses[0]", "IPv4"),
        (lambda s: s["endpoints"][0].update(addresses=[]), "addresses", "at least 1"),
        (lambda s: s["endpoints"][0]["conditions"].update(ready="yes"), "ready", "true or false"),
        (lambda s: s["ports"][0].update(protocol="SCTP"), "protocol", "one of TCP, UDP"),
        (lambda s: s["endpoints"][0].update(zones="a"), "zones", "did you mean 'zone'"),
    ],
)
def test_the_local_validator_refuses_broken_slices_naming_the_field(change, field, message):
    broken = endpoint_slice("a", at("198.18.9.20", ready=True))
    change(broken)

    with pytest.raises(ManifestErrors) as caught:
        parse_documents(yaml.safe_dump(broken), "slice.yaml")

    assert field in str(caught.value) and message in str(caught.value)


def test_every_endpoint_port_field_of_the_api_is_classified():
    """EndpointPort is DiscoveryV1EndpointPort in the client (the other slice types are checked
    with the rest in tests/unit/manifests/test_manifests_kinds.py)."""
    from nodemesh.manifests import kinds

    models = pytest.importorskip("kubernetes.client.models")
    real = set(models.DiscoveryV1EndpointPort.attribute_map.values())

    assert set(kinds.USED_FIELDS["EndpointPort"]) == real

"""KubeRegistry against a recorded API server on loopback: real HTTP, the real `kubernetes` client.

The fake answers lists and watch streams from tests/inprocess/recordings/ and records every
request, so the tests check both what the registry holds and how it talked to the server (which
resourceVersion a watch resumed from, when it relisted). Waits are bounded polls; no timing is
asserted.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import pytest
import yaml

from controller.model import MeshSnapshot
from controller.registry_kube import KubeRegistry
from controller.registry_local import LocalRegistry
from controller.translate import translate
from nodemesh.local.state import StateDir, write_json_atomic
from nodemesh.local.store import Store
from nodemesh.manifests.load import parse_documents
from tests.inprocess.kube_fake import RECORDINGS, FakeApiServer, recording, served

PODS = "/api/v1/pods"
POLICIES = "/apis/security.nodemesh.io/v1/authorizationpolicies"
MESH_YAML = (RECORDINGS / "mesh.yaml").read_text()


@pytest.fixture
def start_registry(api):
    """start() -> a running KubeRegistry on the fake, with test-sized backoff and CRD re-checks."""
    started: list[KubeRegistry] = []

    def start() -> KubeRegistry:
        registry = KubeRegistry(api, backoff=(0.05, 0.2), crd_recheck=0.1)
        started.append(registry)
        registry.start()
        return registry

    try:
        yield start
    finally:
        for registry in started:
            registry.stop()
        assert not [t for t in threading.enumerate() if t.name.startswith("kube-")]


def serve_mesh(server: FakeApiServer, *, skip: tuple[str, ...] = ()) -> dict[str, dict]:
    """Serve mesh.yaml's objects as an API server stores them, and the recorded pods."""
    lists = served(list(yaml.safe_load_all(MESH_YAML)), resource_version="900")
    lists[PODS] = recording("pods-list.json")
    for path, body in lists.items():
        if path not in skip:
            server.set_list(path, body)
    return lists


def eventually(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.01)
    raise AssertionError(f"not true within {timeout} s: {predicate.__doc__ or predicate}")


def names(registry: KubeRegistry, kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in registry.objects() if o["kind"] == kind}


def pod_names(body: dict) -> set[str]:
    return {item["metadata"]["name"] for item in body["items"]}


def lists_of(server: FakeApiServer, path: str) -> int:
    return sum(1 for r in server.requests if r.path == path and "watch" not in r.query)


def test_list_then_watch_events_change_the_objects(server, start_registry):
    serve_mesh(server)
    registry = start_registry()
    assert registry.wait_synced(5)
    assert registry.changed() and not registry.changed()

    objects = registry.objects()
    assert names(registry, "Pod") == pod_names(recording("pods-list.json"))
    assert names(registry, "Service") == {"web", "db", "api", "ext-db"}
    assert names(registry, "EndpointSlice") == {"ext-db-1", "ext-db-2", "web-x7k2p"}
    assert names(registry, "HTTPRoute") == {"web-routes"}
    assert all(o["apiVersion"] and o["kind"] for o in objects)
    assert not [o for o in objects if "managedFields" in o["metadata"]]
    # the finished Job pod and the unscheduled pod hold no identity on the node
    assert registry.service_accounts_on("node-1") == {
        ("shop", "web"),
        ("shop", "db"),
        ("kube-system", "kube-proxy"),
    }
    [first_watch] = eventually(lambda: server.watches(PODS))
    assert first_watch.query["resourceVersion"] == "1000"
    assert first_watch.query["allowWatchBookmarks"] == "true"

    added, modified, deleted, bookmark = recording("pods-watch.jsonl")
    server.send(PODS, added)
    eventually(lambda: "web-7d4f8b9c6-pqrst" in names(registry, "Pod"))
    assert registry.changed()

    server.send(PODS, modified)

    def klmno_ready():
        pods = {o["metadata"]["name"]: o for o in registry.objects() if o["kind"] == "Pod"}
        conditions = pods["web-7d4f8b9c6-klmno"]["status"]["conditions"]
        return {"type": "Ready", "status": "True"}.items() <= conditions[2].items()

    eventually(klmno_ready)
    assert registry.changed()

    server.send(PODS, deleted)
    eventually(lambda: "web-7d4f8b9c6-fghij" not in names(registry, "Pod"))
    assert registry.changed()

    server.send(PODS, bookmark)
    server.end_watch(PODS)  # the server's timeoutSeconds: resume from the bookmark, no relist
    eventually(lambda: len(server.watches(PODS)) == 2)
    assert server.watches(PODS)[1].query["resourceVersion"] == "1010"
    assert lists_of(server, PODS) == 1
    assert not registry.changed()


def test_410_gone_in_the_watch_relists_and_replaces_the_kind(server, start_registry):
    serve_mesh(server)
    registry = start_registry()
    assert registry.wait_synced(5)
    eventually(lambda: server.watches(PODS))
    assert "web-7d4f8b9c6-abcde" in names(registry, "Pod")
    services = names(registry, "Service")

    relist = recording("pods-relist.json")
    server.set_list(PODS, relist)
    server.send(PODS, *recording("watch-expired.jsonl"))

    eventually(lambda: names(registry, "Pod") == pod_names(relist))
    assert "web-7d4f8b9c6-abcde" not in names(registry, "Pod")  # deleted while not watched
    assert names(registry, "Service") == services  # other kinds untouched
    eventually(lambda: len(server.watches(PODS)) == 2)
    assert server.watches(PODS)[1].query["resourceVersion"] == "1734"


def test_410_status_on_the_watch_request_relists(server, start_registry):
    serve_mesh(server)
    server.fail_next_watch(PODS, 410, recording("status-gone.json"))
    registry = start_registry()
    assert registry.wait_synced(5)
    eventually(lambda: len(server.watches(PODS)) == 2)
    assert lists_of(server, PODS) == 2
    assert names(registry, "Pod") == pod_names(recording("pods-list.json"))


def test_other_errors_back_off_and_relist(server, start_registry, caplog):
    serve_mesh(server)
    server.fail_next_watch(PODS, 500, recording("status-internal-error.json"))
    registry = start_registry()
    assert registry.wait_synced(5)
    eventually(lambda: len(server.watches(PODS)) == 2)
    assert lists_of(server, PODS) == 2
    assert names(registry, "Pod") == pod_names(recording("pods-list.json"))
    assert "pods: API server answered 500" in caplog.text


def test_a_missing_crd_is_an_empty_kind_rechecked_later(server, start_registry, caplog):
    caplog.set_level(logging.INFO, "nodemesh.controller.kube")
    lists = serve_mesh(server, skip=(POLICIES,))
    registry = start_registry()
    assert registry.wait_synced(5)
    assert names(registry, "AuthorizationPolicy") == set()
    assert names(registry, "PeerAuthentication") == {"strict"}
    assert names(registry, "Pod") == pod_names(recording("pods-list.json"))
    eventually(lambda: lists_of(server, POLICIES) >= 3)  # re-checked, and logged only once
    missing = [r for r in caplog.records if "authorizationpolicies" in r.getMessage()]
    assert len(missing) == 1 and "not served" in missing[0].getMessage()

    server.set_list(POLICIES, lists[POLICIES])  # the CRD gets installed
    eventually(lambda: names(registry, "AuthorizationPolicy") == {"web-allow", "deny-legacy"})


def local_registry(state_dir: Path) -> LocalRegistry:
    """mesh.yaml applied to a local cluster's store, as `meshctl apply` does, and the recorded
    pods published as the local runtime publishes its pods."""
    state = StateDir(state_dir.name, state_dir.parent)
    state.path.mkdir(parents=True)
    Store(state).apply(parse_documents(MESH_YAML, "mesh.yaml"))
    pods = [dict(p, apiVersion="v1", kind="Pod") for p in recording("pods-list.json")["items"]]
    write_json_atomic(state.status_file, {"pods": pods})
    return LocalRegistry(state.path)


def assert_same_model(kube: MeshSnapshot, local: MeshSnapshot) -> None:
    for field in (f.name for f in dataclasses.fields(MeshSnapshot)):
        assert getattr(kube, field) == getattr(local, field), field


def test_kube_and_local_registries_translate_to_the_same_model(server, start_registry, tmp_path):
    """Every kind, as the local store holds it and as an API server serves the same objects
    (the store's creation times kept, so TrafficPolicy precedence compares equal)."""
    local_source = local_registry(tmp_path / "mesh")
    stored_objects = [o for o in local_source.objects() if o["kind"] != "Pod"]
    for path, body in served(stored_objects, resource_version="900").items():
        server.set_list(path, body)
    server.set_list(PODS, recording("pods-list.json"))
    registry = start_registry()
    assert registry.wait_synced(5)
    assert {o["kind"] for o in registry.objects()} == {o["kind"] for o in local_source.objects()}

    kube = translate(registry.objects())
    local = translate(local_source.objects())

    assert kube.errors == () and local.errors == ()
    assert_same_model(kube.snapshot, local.snapshot)
    snapshot = kube.snapshot
    # running, with an address and its own netns: the Job pod finished, one pod is unscheduled
    # and kube-proxy is on the host network
    assert {w.name for w in snapshot.workloads} == {
        "web-7d4f8b9c6-abcde",
        "web-7d4f8b9c6-fghij",
        "web-7d4f8b9c6-klmno",
        "db-0",
        "api-5c9d7f6b8-q4w8z",
    }
    assert {w.name for w in snapshot.workloads if w.enrolled} == {
        "web-7d4f8b9c6-abcde",
        "web-7d4f8b9c6-fghij",
        "web-7d4f8b9c6-klmno",
    }
    web = snapshot.service("shop", "web")  # from its pods; its stale slice is passed over
    assert [e.address for e in web.endpoints] == ["198.18.1.10", "198.18.2.10"]
    assert web.endpoints[0].ports == ((80, 8080), (9090, 9090))
    ext_db = snapshot.service("shop", "ext-db")  # no selector: from its two slices
    assert [(e.address, e.ports) for e in ext_db.endpoints] == [
        ("198.18.9.20", ((5432, 15432),)),
        ("198.18.9.21", ((5432, 15432),)),
    ]
    assert len(snapshot.authorization_policies) == 2 and len(snapshot.http_routes) == 1
    assert len(snapshot.peer_authentications) == 1
    [waypoint] = snapshot.waypoints
    assert (waypoint.key, waypoint.exists) == ("shop/shop-waypoint", True)
    assert [p.name for p in snapshot.traffic_policies] == ["web-resilience"]

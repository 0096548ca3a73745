"""The object store: manifests in, changes, stored objects and errors out (files under tmp_path)."""

from __future__ import annotations

import re
import textwrap
import uuid

import pytest

from nodemesh.local.state import StateDir
from nodemesh.local.store import Change, Store
from nodemesh.manifests.errors import ManifestErrors
from nodemesh.manifests.load import parse_documents
from nodemesh.manifests.model import Manifest


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(StateDir("test", root=tmp_path))


def docs(*documents: str) -> list[Manifest]:
    text = "\n---\n".join(textwrap.dedent(d).strip() for d in documents)
    return parse_documents(text, "test.yaml")


def namespace(name: str) -> str:
    return f"""
        apiVersion: v1
        kind: Namespace
        metadata: {{name: {name}}}
    """


def service(
    name: str = "web", ns: str = "default", *, cluster_ip: str | None = None, port: int = 80
) -> str:
    ip = f"\n          clusterIP: {cluster_ip!r}" if cluster_ip is not None else ""
    return f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: {ns}}}
        spec:
          selector: {{app: {name}}}
          ports: [{{port: {port}}}]{ip}
    """


def pod(name: str = "api", ns: str = "default", *, image: str = "infinity") -> str:
    return f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, namespace: {ns}}}
        spec:
          containers: [{{name: app, command: [sleep, "{image}"]}}]
    """


def actions(changes: list[Change]) -> list[str]:
    return [str(c) for c in changes]


def stored(store: Store) -> dict[tuple[str, str | None, str], dict]:
    return {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
        for o in store.objects()
    }


def cluster_ips(store: Store) -> dict[str, str | None]:
    return {
        o["metadata"]["name"]: o["spec"].get("clusterIP")
        for o in store.objects()
        if o["kind"] == "Service"
    }


def apply_error(store: Store, manifests: list[Manifest]) -> list[tuple[str, str | None, str]]:
    """(object name, field, message) of every error the apply raised."""
    with pytest.raises(ManifestErrors) as info:
        store.apply(manifests)
    return [(e.name, e.field, e.message) for e in info.value.errors]


# --- a fresh store -----------------------------------------------------------------------------


def test_an_empty_store_has_generation_zero_and_no_objects(store):
    assert store.generation() == 0
    assert store.objects() == []
    assert store.snapshot() == (0, [])
    assert not store.state.store_file.exists()


# --- apply -------------------------------------------------------------------------------------


def test_apply_reports_one_change_per_object_in_order(store):
    changes = store.apply(docs(namespace("shop"), service("web", "shop"), pod("api")))
    assert actions(changes) == [
        "namespace/shop created",
        "service/web created -n shop",
        "pod/api created -n default",
    ]
    assert store.generation() == 1


def test_apply_assigns_uid_creation_time_and_generation(store):
    store.apply(docs(pod("api")))
    meta = stored(store)["Pod", "default", "api"]["metadata"]
    assert str(uuid.UUID(meta["uid"])) == meta["uid"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["generation"] == 1


def test_each_object_gets_its_own_uid(store):
    store.apply(docs(pod("a"), pod("b")))
    uids = {o["metadata"]["uid"] for o in store.objects()}
    assert len(uids) == 2


def test_reapplying_the_same_objects_is_unchanged_and_writes_nothing(store):
    manifests = docs(namespace("shop"), service("web", "shop"))
    store.apply(manifests)
    before = store.state.store_file.read_bytes()
    changes = store.apply(docs(namespace("shop"), service("web", "shop")))
    assert actions(changes) == ["namespace/shop unchanged", "service/web unchanged -n shop"]
    assert store.generation() == 1
    assert store.state.store_file.read_bytes() == before


def test_a_changed_object_is_configured_keeping_uid_and_creation_time(store):
    store.apply(docs(pod("api", image="1")))
    first = stored(store)["Pod", "default", "api"]
    changes = store.apply(docs(pod("api", image="2")))
    second = stored(store)["Pod", "default", "api"]
    assert actions(changes) == ["pod/api configured -n default"]
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert second["metadata"]["creationTimestamp"] == first["metadata"]["creationTimestamp"]
    assert second["metadata"]["generation"] == 2
    assert second["spec"]["containers"][0]["command"] == ["sleep", "2"]
    assert store.generation() == 2


def test_only_changed_objects_get_a_new_generation(store):
    store.apply(docs(pod("a", image="1"), pod("b", image="1")))
    changes = store.apply(docs(pod("a", image="2"), pod("b", image="1")))
    assert actions(changes) == ["pod/a configured -n default", "pod/b unchanged -n default"]
    objects = stored(store)
    assert objects["Pod", "default", "a"]["metadata"]["generation"] == 2
    assert objects["Pod", "default", "b"]["metadata"]["generation"] == 1


def test_the_store_generation_counts_applies_that_change_something(store):
    store.apply(docs(pod("a", image="1")))
    store.apply(docs(pod("a", image="1")))
    store.apply(docs(pod("a", image="2")))
    store.apply(docs(pod("b")))
    assert store.generation() == 3


def test_a_new_store_object_survives_a_new_store_instance(store, tmp_path):
    store.apply(docs(pod("api")))
    again = Store(StateDir("test", root=tmp_path))
    assert [o["metadata"]["name"] for o in again.objects()] == ["api"]
    assert again.generation() == 1


# --- Service cluster IPs -----------------------------------------------------------------------


def test_services_get_distinct_cluster_ips_from_the_bottom_of_the_range(store):
    store.apply(docs(service("a"), service("b")))
    store.apply(docs(service("c")))
    assert cluster_ips(store) == {"a": "198.19.0.10", "b": "198.19.0.11", "c": "198.19.0.12"}


def test_a_reapplied_service_keeps_its_cluster_ip(store):
    store.apply(docs(service("a"), service("b")))
    changes = store.apply(docs(service("b", port=8080), service("a")))
    assert actions(changes) == ["service/b configured -n default", "service/a unchanged -n default"]
    assert cluster_ips(store) == {"a": "198.19.0.10", "b": "198.19.0.11"}


def test_a_requested_cluster_ip_is_kept_and_skipped_by_later_allocations(store):
    store.apply(docs(service("a", cluster_ip="198.19.0.10"), service("b")))
    assert cluster_ips(store) == {"a": "198.19.0.10", "b": "198.19.0.11"}


def test_restating_the_allocated_cluster_ip_is_allowed(store):
    store.apply(docs(service("a")))
    changes = store.apply(docs(service("a", cluster_ip="198.19.0.10", port=81)))
    assert actions(changes) == ["service/a configured -n default"]
    assert cluster_ips(store) == {"a": "198.19.0.10"}


def test_a_headless_service_gets_no_cluster_ip(store):
    store.apply(docs(service("h", cluster_ip="None"), service("a")))
    assert cluster_ips(store) == {"h": "None", "a": "198.19.0.10"}


def test_a_deleted_services_cluster_ip_can_be_reused(store):
    store.apply(docs(service("a"), service("b")))
    store.delete(docs(service("a")))
    store.apply(docs(service("c")))
    assert cluster_ips(store) == {"b": "198.19.0.11", "c": "198.19.0.10"}


def test_changing_a_cluster_ip_is_an_error_naming_the_field(store):
    store.apply(docs(service("a")))
    [(name, field, message)] = apply_error(store, docs(service("a", cluster_ip="198.19.0.99")))
    assert (name, field) == ("default/a", "spec.clusterIP")
    assert "immutable" in message
    assert "198.19.0.10" in message
    assert "198.19.0.99" in message
    assert cluster_ips(store) == {"a": "198.19.0.10"}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(None, "None", id="allocated-to-headless"),
        pytest.param("None", "198.19.0.50", id="headless-to-allocated"),
    ],
)
def test_switching_between_headless_and_a_cluster_ip_is_an_error(store, first, second):
    store.apply(docs(service("a", cluster_ip=first)))
    [(_name, field, _message)] = apply_error(store, docs(service("a", cluster_ip=second)))
    assert field == "spec.clusterIP"


@pytest.mark.parametrize(
    ("ip", "problem"),
    [
        ("198.19.0.10", "already allocated"),
        ("198.19.0.5", "outside the service range"),
        ("198.18.1.10", "outside the service range"),
    ],
)
def test_an_unusable_requested_cluster_ip_is_an_error(store, ip, problem):
    store.apply(docs(service("a")))
    [(name, field, message)] = apply_error(store, docs(service("b", cluster_ip=ip)))
    assert (name, field) == ("default/b", "spec.clusterIP")
    assert problem in message


def test_two_services_asking_for_one_ip_in_one_apply_are_an_error(store):
    manifests = docs(service("a", cluster_ip="198.19.0.20"), service("b", cluster_ip="198.19.0.20"))
    [(name, field, message)] = apply_error(store, manifests)
    assert (name, field) == ("default/b", "spec.clusterIP")
    assert "already allocated" in message
    assert store.objects() == []


# --- namespaces --------------------------------------------------------------------------------


@pytest.mark.parametrize("ns", ["default", "nodemesh-system"])
def test_builtin_namespaces_need_no_namespace_object(store, ns):
    assert actions(store.apply(docs(pod("api", ns)))) == [f"pod/api created -n {ns}"]


def test_an_object_in_a_missing_namespace_is_an_error(store):
    [(name, field, message)] = apply_error(store, docs(pod("api", "shop")))
    assert (name, field) == ("shop/api", "metadata.namespace")
    assert "namespace 'shop' not found" in message


def test_a_namespace_document_before_its_objects_makes_them_valid(store):
    changes = store.apply(docs(namespace("shop"), pod("api", "shop")))
    assert actions(changes) == ["namespace/shop created", "pod/api created -n shop"]


def test_a_namespace_document_after_its_objects_is_too_late(store):
    [(name, field, _message)] = apply_error(store, docs(pod("api", "shop"), namespace("shop")))
    assert (name, field) == ("shop/api", "metadata.namespace")
    assert store.objects() == []


def test_a_namespace_applied_earlier_makes_objects_valid(store):
    store.apply(docs(namespace("shop")))
    assert actions(store.apply(docs(pod("api", "shop")))) == ["pod/api created -n shop"]


# --- all or nothing ----------------------------------------------------------------------------


def test_an_apply_with_one_bad_document_changes_nothing(store):
    store.apply(docs(service("a"), pod("api", image="1")))
    before = store.state.store_file.read_bytes()
    manifests = docs(
        pod("api", image="2"),  # would be configured
        service("b"),  # would be created
        pod("lost", "nowhere"),  # bad: no such namespace
    )
    errors = apply_error(store, manifests)
    assert [(n, f) for n, f, _m in errors] == [("nowhere/lost", "metadata.namespace")]
    assert store.generation() == 1
    assert store.state.store_file.read_bytes() == before


def test_every_bad_document_of_an_apply_is_reported(store):
    store.apply(docs(service("a")))
    manifests = docs(
        pod("x", "nowhere"),
        service("a", cluster_ip="198.19.0.77"),
        service("b", cluster_ip="198.19.0.10"),
    )
    errors = apply_error(store, manifests)
    assert [(n, f) for n, f, _m in errors] == [
        ("nowhere/x", "metadata.namespace"),
        ("default/a", "spec.clusterIP"),
        ("default/b", "spec.clusterIP"),
    ]


# --- delete ------------------------------------------------------------------------------------


def test_delete_removes_the_object_and_bumps_the_generation(store):
    store.apply(docs(pod("a"), pod("b")))
    changes = store.delete(docs(pod("a")))
    assert actions(changes) == ["pod/a deleted -n default"]
    assert list(stored(store)) == [("Pod", "default", "b")]
    assert store.generation() == 2


def test_deleting_a_missing_object_reports_not_found_and_writes_nothing(store):
    store.apply(docs(pod("a")))
    before = store.state.store_file.read_bytes()
    changes = store.delete(docs(pod("zzz"), service("a")))
    assert actions(changes) == ["pod/zzz not found -n default", "service/a not found -n default"]
    assert store.generation() == 1
    assert store.state.store_file.read_bytes() == before


def test_delete_reports_found_and_missing_objects_together(store):
    store.apply(docs(pod("a")))
    changes = store.delete(docs(pod("a"), pod("b")))
    assert actions(changes) == ["pod/a deleted -n default", "pod/b not found -n default"]
    assert store.objects() == []


def test_deleting_a_namespace_deletes_everything_in_it(store):
    store.apply(
        docs(
            namespace("shop"),
            namespace("blog"),
            service("web", "shop"),
            pod("api", "shop"),
            pod("api", "blog"),
            pod("api", "default"),
        )
    )
    changes = store.delete(docs(namespace("shop")))
    assert actions(changes) == ["namespace/shop deleted"]
    assert sorted(stored(store), key=str) == sorted(
        [
            ("Namespace", None, "blog"),
            ("Pod", "blog", "api"),
            ("Pod", "default", "api"),
        ],
        key=str,
    )
    apply_error(store, docs(pod("again", "shop")))  # the namespace is really gone

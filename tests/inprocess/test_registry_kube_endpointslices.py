"""EndpointSlices through KubeRegistry: listed, watched and relisted like every kind, and read by
translate for the Service without a selector (ext-db in mesh.yaml) only.

The watch events and the relist are recordings (endpointslices-watch.jsonl,
endpointslices-relist.json) of the slices a database operator's tool would write.
"""

from __future__ import annotations

from controller.translate import translate
from tests.inprocess.kube_fake import collection_path, recording
from tests.inprocess.test_registry_kube import eventually, serve_mesh, start_registry

__all__ = ["start_registry"]  # a fixture, shared with the other registry tests

SLICES = collection_path("discovery.k8s.io/v1", "endpointslices")


def ext_db(registry) -> list[tuple[str, tuple]]:
    service = translate(registry.objects()).snapshot.service("shop", "ext-db")
    return [(e.address, e.ports) for e in service.endpoints]


def web_endpoints(registry) -> list[str]:
    service = translate(registry.objects()).snapshot.service("shop", "web")
    return [e.address for e in service.endpoints]


def test_watched_slices_change_the_endpoints_of_a_service_without_selector(server, start_registry):
    serve_mesh(server)
    registry = start_registry()
    assert registry.wait_synced(5)
    eventually(lambda: server.watches(SLICES))
    assert ext_db(registry) == [
        ("198.18.9.20", ((5432, 15432),)),
        ("198.18.9.21", ((5432, 15432),)),
    ]
    web_before = web_endpoints(registry)

    modified, deleted, added, bookmark = recording("endpointslices-watch.jsonl")
    server.send(SLICES, modified, deleted)

    def only_the_draining_endpoint():
        """nothing ready: the endpoint still serving while terminating is used (KEP-1669)"""
        return ext_db(registry) == [("198.18.9.21", ((5432, 15432),))]

    eventually(only_the_draining_endpoint)

    server.send(SLICES, added, bookmark)

    def the_new_ready_endpoint():
        """a ready endpoint arrived: it alone is used, on the new slice's port"""
        return ext_db(registry) == [("198.18.9.30", ((5432, 5433),))]

    eventually(the_new_ready_endpoint)
    assert web_endpoints(registry) == web_before  # a selector Service never reads slices

    server.end_watch(SLICES)
    eventually(lambda: len(server.watches(SLICES)) == 2)
    assert server.watches(SLICES)[1].query["resourceVersion"] == "1110"


def test_410_gone_on_the_slice_watch_relists_and_the_model_follows(server, start_registry):
    serve_mesh(server)
    registry = start_registry()
    assert registry.wait_synced(5)
    eventually(lambda: server.watches(SLICES))

    server.set_list(SLICES, recording("endpointslices-relist.json"))
    server.send(SLICES, *recording("watch-expired.jsonl"))

    def relisted():
        """the relist replaced every slice: ext-db-1 and -2 went while nobody watched"""
        return ext_db(registry) == [
            ("198.18.1.11", ((5432, 5433),)),
            ("198.18.9.31", ((5432, 5433),)),
        ]

    eventually(relisted)
    snapshot = translate(registry.objects()).snapshot
    db_pod = next(w for w in snapshot.workloads if w.name == "db-0")
    by_address = {e.address: e for e in snapshot.service("shop", "ext-db").endpoints}
    assert by_address["198.18.1.11"].workload_uid == db_pod.uid  # the slice's targetRef
    assert by_address["198.18.9.31"].workload_uid == "endpointslice/shop/ext-db/198.18.9.31"
    eventually(lambda: len(server.watches(SLICES)) == 2)
    assert server.watches(SLICES)[1].query["resourceVersion"] == "1840"


def test_without_endpointslices_served_a_service_without_selector_has_no_endpoints(
    server, start_registry
):
    """An API server that does not serve discovery.k8s.io/v1 (before 1.21): an empty kind."""
    serve_mesh(server, skip=(SLICES,))
    registry = start_registry()

    assert registry.wait_synced(5)
    assert ext_db(registry) == []
    assert web_endpoints(registry) == ["198.18.1.10", "198.18.2.10"]

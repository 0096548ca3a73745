"""The encoded resources a subscriber's scope asks for, with a cache across snapshots.

`controller.scope` decides which keys a subscriber gets; this module turns those keys into xDS
resources. It is apart from the distributor (which speaks gRPC) because `meshctl trace --explain`
builds the very same resources to replay what each component holds, and a CLI should not import
the gRPC server to do that.
"""

from __future__ import annotations

from controller import resources
from controller.model import MeshSnapshot
from nodemesh.xds.resources import XdsResource


class ResourceCache:
    """Serialized resources reused across snapshots while their model object is unchanged.

    Serializing and hashing every resource of every subscriber on every change costs ~25 µs each
    (0.25 s for 11,000); model objects are frozen dataclasses, so an equality check tells whether
    the previous bytes are still right. Entries not used by the latest build are dropped.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[object, XdsResource]] = {}
        self._used: set[tuple[str, str]] = set()

    def resource(self, snapshot: MeshSnapshot, key) -> XdsResource | None:
        obj = resources.lookup(snapshot, key)
        if obj is None:
            return None
        ident = (key.type_url, key.name)
        self._used.add(ident)
        cached = self._entries.get(ident)
        if cached is not None and cached[0] == obj:
            return cached[1]
        res = XdsResource.build(
            key.type_url, key.name, resources.to_message(obj).SerializeToString()
        )
        self._entries[ident] = (obj, res)
        return res

    def sweep(self) -> None:
        """Forget resources no subscriber asked for since the last sweep."""
        self._entries = {k: v for k, v in self._entries.items() if k in self._used}
        self._used = set()


def wanted_for(
    snapshot: MeshSnapshot, keys, cache: ResourceCache | None = None
) -> dict[str, dict[str, XdsResource]]:
    cache = cache or ResourceCache()
    out: dict[str, dict[str, XdsResource]] = {}
    for key in keys:
        res = cache.resource(snapshot, key)
        if res is not None:
            out.setdefault(key.type_url, {})[key.name] = res
    return out

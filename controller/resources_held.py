"""What a subscriber (node agent, waypoint) holds of each resource type, updated per response.

Phase one of ztunnel's two-phase apply: each received resource is decoded on its own; one that
does not decode is rejected alone (its last good version is kept, and the caller NACKs it), and
removals apply. The caller then builds its new immutable snapshot from `values()` (phase two).
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.resources import ResourceError, from_resource
from nodemesh.xds.resources import XdsResource


class HeldResources:
    def __init__(self, type_urls: Iterable[str], holder: str) -> None:
        self.holder = holder  # "this agent", "a waypoint": who refuses a type it does not use
        self._held: dict[str, dict[str, object]] = {t: {} for t in type_urls}

    def apply(
        self, type_url: str, upserts: list[XdsResource], removals: list[str]
    ) -> dict[str, str] | None:
        """Stage one response; {name: reason} for the refused, None if the type is not held."""
        held = self._held.get(type_url)
        if held is None:
            return None
        rejected: dict[str, str] = {}
        staged = dict(held)
        for res in upserts:
            try:
                staged[res.name] = from_resource(type_url, res.payload, res.name)
            except ResourceError as exc:
                rejected[res.name] = str(exc)  # keep the last good version of this one
        for name in removals:
            staged.pop(name, None)
        self._held[type_url] = staged
        return rejected

    def unused(self, type_url: str, upserts: list[XdsResource]) -> dict[str, str]:
        return {r.name: f"{self.holder} does not use {type_url}" for r in upserts}

    def values(self, type_url: str) -> list[object]:
        return list(self._held[type_url].values())

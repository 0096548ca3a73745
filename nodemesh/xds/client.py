"""Client side of nodemesh's delta xDS: one :class:`DeltaClient` per type_url, without I/O.

Theory of operation
-------------------
Agents and waypoints subscribe to the wildcard ``*`` of each type they consume: the controller
decides what a node gets.  The I/O shell opens ``DeltaAggregatedResources``, sends
:meth:`DeltaClient.initial_request` for each type, and hands every response of that type to
:meth:`DeltaClient.on_response`, which returns the ACK or NACK to send back.  Nothing here reads or
writes a stream.

Each response is applied in two phases, as ztunnel does: first every resource is read on its own
(a missing body, a body of another type, a name repeated or both updated and removed in the same
response rejects that name alone), then the caller's handler gets the readable upserts and the
removals in one call and returns the names it refused, with a reason.  The handler is expected to
validate everything first and then swap its state at once (a new frozen snapshot, one reference),
so readers never see half a response.  An upsert of the very version already accepted skips the
handler: there is nothing to apply, it only confirms what the node runs (the controller resends a
held version when it drops a refused one, so both sides clear the refusal).

The client keeps the versions it *accepted*.  A refused resource keeps its previous accepted
version, or stays absent if it had none: the node goes on with its last good config.  The reply
is an ACK when nothing was refused, otherwise a NACK naming each refused resource (format in
:mod:`nodemesh.xds.resources`); the server treats the rest of the response as applied.  On
reconnect, :meth:`DeltaClient.initial_request` sends the accepted versions as
``initial_resource_versions`` so the server sends only what differs, and removes what this node
holds but should not.

Removals cannot be refused: the resource no longer exists upstream, so keeping it would be config
nobody can update.  A handler that names a resource it was not offered is a bug
(:class:`~nodemesh.xds.resources.LocalProtocolError`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from nodemesh.xds.resources import (
    WILDCARD,
    LocalProtocolError,
    Rejection,
    RemoteProtocolError,
    ResourceError,
    XdsResource,
    encode_nack,
)

DeltaRequest = discovery_pb2.DeltaDiscoveryRequest
DeltaResponse = discovery_pb2.DeltaDiscoveryResponse

Handler = Callable[[list[XdsResource], list[str]], Mapping[str, str]]
"""``apply(upserts, removals) -> {rejected name: reason}``, supplied by the component."""


def build_node(
    node_id: str, cluster: str, metadata: Mapping[str, str] | None = None
) -> base_pb2.Node:
    """The ``node`` of a first request: who is asking, so the controller can pick its config."""
    node = base_pb2.Node(id=node_id, cluster=cluster)
    if metadata:
        node.metadata.update(dict(metadata))
    return node


class DeltaClient:
    """One type's delta subscription as an agent or waypoint sees it: responses in, replies out."""

    def __init__(self, type_url: str, handler: Handler) -> None:
        self.type_url = type_url
        self._handler = handler
        self._accepted: dict[str, str] = {}
        self._rejected: dict[str, Rejection] = {}
        self._stream_open = False
        self._synced = False
        self._last_nonce: str | None = None
        self._last_system_version: str | None = None
        self._counts = {"responses": 0, "acks": 0, "nacks": 0}

    def initial_request(
        self, node: base_pb2.Node, known_versions: Mapping[str, str] | None = None
    ) -> DeltaRequest:
        """The first request of a (new) stream: wildcard subscription plus what this node holds.

        ``known_versions`` replaces the accepted versions (a node restarting with config it kept);
        by default the versions this client accepted on earlier streams are sent.  Refusals are
        forgotten: the new stream's server offers every refused version that is still current
        once more, and the handler decides again.
        """
        if known_versions is not None:
            self._accepted = dict(known_versions)
        self._rejected = {}
        self._stream_open = True
        self._synced = False
        return DeltaRequest(
            type_url=self.type_url,
            node=node,
            resource_names_subscribe=[WILDCARD],
            initial_resource_versions=self._accepted,
        )

    def on_response(self, resp: DeltaResponse) -> DeltaRequest:
        """Apply one response through the handler and return its ACK or NACK."""
        self._check(resp)
        upserts, rejections = self._read(resp)
        removals = [n for n in _removed_names(resp) if n not in rejections]
        changed = {n: r for n, r in upserts.items() if self._accepted.get(n) != r.version}
        rejections.update(self._apply(changed, removals))
        self._record(upserts, removals, rejections)
        self._note(resp, rejections)
        return self._reply(resp.nonce, rejections)

    def known_versions(self) -> dict[str, str]:
        """name → accepted version: what a reconnect sends as ``initial_resource_versions``."""
        return dict(self._accepted)

    def rejected(self) -> dict[str, Rejection]:
        """name → the version refused most recently (the accepted one, if any, still applies)."""
        return dict(self._rejected)

    @property
    def synced(self) -> bool:
        """Whether a response arrived on the current stream (the initial fetch is done)."""
        return self._synced

    def state(self) -> dict:
        """A JSON-ready summary for the admin endpoint's config dump."""
        return {
            "type_url": self.type_url,
            "synced": self._synced,
            "last_nonce": self._last_nonce,
            "last_system_version": self._last_system_version,
            "accepted": dict(sorted(self._accepted.items())),
            "rejected": {
                name: {"version": r.version, "reason": r.reason}
                for name, r in sorted(self._rejected.items())
            },
            **self._counts,
        }

    # --- phases ------------------------------------------------------------------------------

    def _check(self, resp: DeltaResponse) -> None:
        if not self._stream_open:
            raise LocalProtocolError("on_response before initial_request: no stream is open")
        if resp.type_url != self.type_url:
            raise LocalProtocolError(
                f"response for {resp.type_url!r} fed to the {self.type_url!r} client"
            )
        if not resp.nonce:
            raise RemoteProtocolError("response without a nonce cannot be acknowledged")

    def _read(self, resp: DeltaResponse) -> tuple[dict[str, XdsResource], dict[str, Rejection]]:
        """Phase one: read each resource alone; one that cannot be used rejects only itself."""
        removed = set(_removed_names(resp))
        upserts: dict[str, XdsResource] = {}
        rejections: dict[str, Rejection] = {}
        for proto in resp.resources:
            name = proto.name
            if name in rejections:
                continue
            reason = _conflict(name, upserts, removed)
            if reason is None:
                try:
                    upserts[name] = XdsResource.from_proto(proto, self.type_url)
                    continue
                except ResourceError as err:
                    reason = str(err)
            upserts.pop(name, None)
            rejections[name] = Rejection(proto.version, reason)
        return upserts, rejections

    def _apply(
        self, upserts: Mapping[str, XdsResource], removals: list[str]
    ) -> dict[str, Rejection]:
        """Phase two: the handler applies the batch and names what it refused."""
        refused = dict(self._handler(list(upserts.values()), removals))
        stray = sorted(set(refused) - set(upserts))
        if stray:
            raise LocalProtocolError(
                f"handler rejected {stray}, which were not among the upserts it was given"
            )
        return {name: Rejection(upserts[name].version, why) for name, why in refused.items()}

    def _record(
        self,
        upserts: Mapping[str, XdsResource],
        removals: Iterable[str],
        rejections: Mapping[str, Rejection],
    ) -> None:
        for name, resource in upserts.items():
            if name not in rejections:
                self._accepted[name] = resource.version
                self._rejected.pop(name, None)
        for name in removals:
            self._accepted.pop(name, None)
            self._rejected.pop(name, None)
        self._rejected.update(rejections)

    def _note(self, resp: DeltaResponse, rejections: Mapping[str, Rejection]) -> None:
        self._synced = True
        self._last_nonce = resp.nonce
        self._last_system_version = resp.system_version_info
        self._counts["responses"] += 1
        self._counts["nacks" if rejections else "acks"] += 1

    def _reply(self, nonce: str, rejections: Mapping[str, Rejection]) -> DeltaRequest:
        req = DeltaRequest(type_url=self.type_url, response_nonce=nonce)
        if rejections:
            req.error_detail.CopyFrom(encode_nack({n: r.reason for n, r in rejections.items()}))
        return req


def _removed_names(resp: DeltaResponse) -> list[str]:
    """Removed names, once each, from both the plain and the newer ``ResourceName`` field."""
    names = [*resp.removed_resources, *(r.name for r in resp.removed_resource_names)]
    return list(dict.fromkeys(names))


def _conflict(name: str, upserts: Mapping[str, XdsResource], removed: set[str]) -> str | None:
    """Why a name cannot be taken from this response at all, or ``None``."""
    if name in upserts:
        return "resource appears twice in one response"
    if name in removed:
        return "resource is both updated and removed in one response"
    return None

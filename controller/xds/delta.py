"""Server side of nodemesh's delta xDS: one subscription per (stream, type_url), without I/O.

Theory of operation
-------------------
An agent or waypoint opens ``DeltaAggregatedResources`` and sends, per type, a first request with
its node, its subscriptions (nodemesh clients subscribe to the wildcard ``*``) and, after a
reconnect, ``initial_resource_versions``: what it already holds.  The I/O shell makes one
:class:`DeltaSubscription` per (stream, type_url), feeds it every request of that type
(:meth:`~DeltaSubscription.on_request`) and every new desired set of resources for this subscriber
(:meth:`~DeltaSubscription.on_snapshot`), and writes out the responses those calls return.  It never
reads or writes anything else: this module touches no socket, no gRPC and no event loop.

The subscription keeps what the client *holds* (name → version: the initial versions, then every
acknowledged one) and what it *refused* (name → rejected version and reason).  A push carries
exactly the wanted resources whose version differs from the held one, minus versions the client
already refused, plus the removal of every held name that is no longer wanted.  So a reconnect is a
full resync that sends only differences, and a refused version is never sent again unchanged:
the client keeps running on its last good version until the controller produces a new one.  (The
one resend of a held version: when the desired version moves off a refused one, it goes out even
if the client holds it, so both sides drop the refusal from their records; for the same reason a
refused name that is no longer wanted is "removed" although the client never had it.)

At most one response per type is in flight.  A snapshot that arrives meanwhile is only recorded;
when the ACK or NACK comes back, everything that changed in between goes out in one response
(coalescing), computed against what the reply showed the client to hold.

A NACK (see :mod:`nodemesh.xds.resources` for its format) rejects only the resources it names; the
rest of that response counts as applied.  A NACK in another format rejects the whole response, as
Envoy means it.  The first push of a stream is sent even when empty, because clients (ztunnel
among them) wait for one response per type before reporting themselves ready.

=========  =========================================  ==========================================
state      input                                      outcome
=========  =========================================  ==========================================
any        request of another type_url                LocalProtocolError: the shell misrouted it
any        snapshot with a resource of another type   LocalProtocolError: the model is wrong
waiting    snapshot                                   recorded; nothing sent yet
waiting    first request                              record initial versions and subscriptions;
                                                      push if a snapshot is known
idle       snapshot, subscription change              push the differences (nothing if none)
in flight  snapshot, subscription change              recorded; coalesced into the next push
in flight  ACK of the in-flight nonce                 sent versions held; push what is pending
in flight  NACK of the in-flight nonce                named ones rejected, the rest held; push
                                                      what is pending
any        ACK/NACK of an earlier nonce of ours       ignored (a late or duplicate reply), counted
any        nonce this subscription never sent         RemoteProtocolError: close the stream
any        error_detail without a response_nonce      RemoteProtocolError: close the stream
opened     initial_resource_versions again            RemoteProtocolError: close the stream
=========  =========================================  ==========================================

Closing the stream is the cure for a confused peer: the client reconnects with its
``initial_resource_versions`` and both sides agree again.  A closed stream's subscription is thrown
away; rejections are not carried over, so a new stream offers a refused version once more (the
client may have been upgraded to accept it).  Only "earlier nonces of ours" among the last
:data:`RECENT_NONCES` are recognised as stale; with one response in flight a correct client is
never more than one behind.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from nodemesh.xds.resources import (
    WILDCARD,
    LocalProtocolError,
    Rejection,
    RemoteProtocolError,
    XdsResource,
    decode_nack,
)

RECENT_NONCES = 64
"""How many of its own nonces a subscription remembers, to tell a stale reply from a bogus one."""

DeltaRequest = discovery_pb2.DeltaDiscoveryRequest
DeltaResponse = discovery_pb2.DeltaDiscoveryResponse


def counter_nonces(prefix: str = "") -> Callable[[], str]:
    """A nonce factory counting from 1: unique within a subscription, which is all xDS asks."""
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter)}"


def plan_push(
    wanted: Mapping[str, XdsResource],
    held: Mapping[str, str],
    rejected: Mapping[str, Rejection],
) -> tuple[list[XdsResource], list[str]]:
    """What to send a client holding ``held`` so it ends up with ``wanted``, both sorted by name.

    A resource goes out when its version differs from the held one, unless that very version was
    refused.  A resource refused at another version goes out even if held, so the client learns
    the refusal is over.  A held or refused name that is not wanted is removed: the client drops
    it, or at least its record of the refusal.
    """
    upserts = [
        resource
        for name, resource in sorted(wanted.items())
        if _outdated(resource, held.get(name), rejected.get(name))
    ]
    removals = sorted(name for name in held.keys() | rejected.keys() if name not in wanted)
    return upserts, removals


def _outdated(resource: XdsResource, held: str | None, rejection: Rejection | None) -> bool:
    if rejection is not None:
        return rejection.version != resource.version
    return held != resource.version


@dataclass(frozen=True)
class _InFlight:
    """The one response of this type the client has not answered yet."""

    nonce: str
    version: str
    sent: Mapping[str, str]
    """name → version of every resource in the response."""
    removed: tuple[str, ...]


class DeltaSubscription:
    """One client's subscription to one type on one stream: requests and snapshots in, pushes out.

    ``subscriber`` identifies the client in :meth:`state` (the node id, say).  ``nonces`` makes
    response nonces (inject :func:`counter_nonces` for deterministic tests); ``clock`` stamps the
    last ACK for operators.
    """

    def __init__(
        self,
        subscriber: str,
        type_url: str,
        *,
        nonces: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.subscriber = subscriber
        self.type_url = type_url
        self._nonces = nonces or counter_nonces()
        self._clock = clock
        self._opened = False
        self._wildcard = False
        self._names: set[str] = set()
        self._desired: dict[str, XdsResource] | None = None
        self._snapshot_version = ""
        self._held: dict[str, str] = {}
        self._rejected: dict[str, Rejection] = {}
        self._in_flight: _InFlight | None = None
        self._recent: deque[str] = deque(maxlen=RECENT_NONCES)
        self._pushed_once = False
        self._pending = False
        self._counts = {"pushes": 0, "acks": 0, "nacks": 0, "stale_replies": 0}
        self._last_sent: tuple[str, str] | None = None
        self._last_acked_version: str | None = None
        self._last_ack_time: float | None = None

    # --- inputs ------------------------------------------------------------------------------

    def on_request(self, req: DeltaRequest) -> list[DeltaResponse]:
        """Handle one request of this type: subscription, ACK, NACK or a mix of them."""
        if req.type_url != self.type_url:
            raise LocalProtocolError(
                f"request for {req.type_url!r} fed to the {self.type_url!r} subscription"
            )
        if not self._opened:
            self._open(req)
        elif req.initial_resource_versions:
            raise RemoteProtocolError(
                "initial_resource_versions is only valid in the first request of a stream"
            )
        if req.response_nonce:
            self._on_reply(req)
        elif req.HasField("error_detail"):
            raise RemoteProtocolError("error_detail without response_nonce: a NACK must name one")
        self._change_subscription(req.resource_names_subscribe, req.resource_names_unsubscribe)
        return self._maybe_push()

    def on_snapshot(
        self, resources: Mapping[str, XdsResource], version: str
    ) -> list[DeltaResponse]:
        """Take the full desired set for this subscriber; push the differences unless one is in
        flight (then they go out, coalesced, after its reply)."""
        self._desired = self._checked(resources)
        self._snapshot_version = version
        self._pending = True
        return self._maybe_push()

    # --- observability -----------------------------------------------------------------------

    def held(self) -> dict[str, str]:
        """name → version the client is known to hold (initial versions, then acknowledged)."""
        return dict(self._held)

    def rejected(self) -> dict[str, Rejection]:
        """name → the version the client refused (and keeps its last good one instead)."""
        return dict(self._rejected)

    @property
    def in_flight_nonce(self) -> str | None:
        return self._in_flight.nonce if self._in_flight else None

    def state(self) -> dict:
        """A JSON-ready summary for the admin endpoint and ``meshctl status``."""
        last_nonce, last_version = self._last_sent or (None, None)
        return {
            "subscriber": self.subscriber,
            "type_url": self.type_url,
            "wildcard": self._wildcard,
            "names": sorted(self._names),
            "snapshot_version": self._snapshot_version,
            "last_sent_nonce": last_nonce,
            "last_sent_version": last_version,
            "last_acked_version": self._last_acked_version,
            "last_ack_time": self._last_ack_time,
            "in_flight_nonce": self.in_flight_nonce,
            "pending": self._pending,
            "held_resources": len(self._held),
            "rejected": {
                name: {"version": r.version, "reason": r.reason}
                for name, r in sorted(self._rejected.items())
            },
            **self._counts,
        }

    # --- requests ----------------------------------------------------------------------------

    def _open(self, req: DeltaRequest) -> None:
        """First request: what the client holds, and Envoy's legacy wildcard (no names at all)."""
        self._opened = True
        self._held = dict(req.initial_resource_versions)
        self._wildcard = not req.resource_names_subscribe
        self._pending = True

    def _on_reply(self, req: DeltaRequest) -> None:
        nonce = req.response_nonce
        flight = self._in_flight
        if flight is None or nonce != flight.nonce:
            if nonce not in self._recent:
                raise RemoteProtocolError(f"response_nonce {nonce!r} was never sent on this stream")
            self._counts["stale_replies"] += 1
            return
        self._in_flight = None
        if req.HasField("error_detail"):
            self._on_nack(flight, req.error_detail)
        else:
            self._on_ack(flight)

    def _on_ack(self, flight: _InFlight) -> None:
        self._record_applied(flight, {})
        self._counts["acks"] += 1
        self._last_acked_version = flight.version
        self._last_ack_time = self._clock()

    def _on_nack(self, flight: _InFlight, status: status_pb2.Status) -> None:
        named = decode_nack(status)
        if named is None:
            reason = status.message or "response rejected"
            named = dict.fromkeys(flight.sent, reason)
        self._record_applied(flight, {n: r for n, r in named.items() if n in flight.sent})
        self._counts["nacks"] += 1

    def _record_applied(self, flight: _InFlight, rejected: Mapping[str, str]) -> None:
        """The client applied the response except ``rejected``, for which it kept what it had."""
        for name, version in flight.sent.items():
            if name in rejected:
                self._rejected[name] = Rejection(version, rejected[name])
            else:
                self._held[name] = version
                self._rejected.pop(name, None)
        for name in flight.removed:
            self._held.pop(name, None)
            self._rejected.pop(name, None)

    def _change_subscription(self, subscribe: Iterable[str], unsubscribe: Iterable[str]) -> None:
        """Apply name changes; an unsubscribed resource is dropped by the client itself (xDS)."""
        for name in subscribe:
            self._pending = True
            if name == WILDCARD:
                self._wildcard = True
            else:
                self._names.add(name)
        for name in unsubscribe:
            self._pending = True
            if name == WILDCARD:
                self._wildcard = False
            else:
                self._names.discard(name)
        if unsubscribe:
            self._held = {n: v for n, v in self._held.items() if self._subscribed(n)}
            self._rejected = {n: r for n, r in self._rejected.items() if self._subscribed(n)}

    def _subscribed(self, name: str) -> bool:
        return self._wildcard or name in self._names

    # --- responses ---------------------------------------------------------------------------

    def _maybe_push(self) -> list[DeltaResponse]:
        if self._in_flight is not None or self._desired is None or not self._opened:
            return []
        self._pending = False
        wanted = {n: r for n, r in self._desired.items() if self._subscribed(n)}
        upserts, removals = plan_push(wanted, self._held, self._rejected)
        if not upserts and not removals and self._pushed_once:
            return []
        return [self._send(upserts, removals)]

    def _send(self, upserts: list[XdsResource], removals: list[str]) -> DeltaResponse:
        nonce = self._next_nonce()
        version = self._snapshot_version
        self._in_flight = _InFlight(
            nonce, version, {r.name: r.version for r in upserts}, tuple(removals)
        )
        self._pushed_once = True
        self._last_sent = (nonce, version)
        self._counts["pushes"] += 1
        return DeltaResponse(
            type_url=self.type_url,
            system_version_info=version,
            nonce=nonce,
            resources=[r.to_proto() for r in upserts],
            removed_resources=removals,
        )

    def _next_nonce(self) -> str:
        nonce = self._nonces()
        if not nonce or nonce in self._recent:
            raise LocalProtocolError(f"nonce factory returned an empty or reused nonce {nonce!r}")
        self._recent.append(nonce)
        return nonce

    def _checked(self, resources: Mapping[str, XdsResource]) -> dict[str, XdsResource]:
        for name, resource in resources.items():
            if resource.name != name or resource.type_url != self.type_url:
                raise LocalProtocolError(
                    f"snapshot entry {name!r} holds {resource.type_url} {resource.name!r}; "
                    f"this subscription serves {self.type_url} by name"
                )
        return dict(resources)

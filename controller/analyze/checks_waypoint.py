"""Checks of waypoints: labels that name one, and Gateways that declare one.

A Service, pod or namespace labelled `nodemesh.io/use-waypoint: <name>` must receive its traffic
through waypoint <namespace>/<name>, a Gateway of class nodemesh-waypoint; when that Gateway does
not exist the traffic is refused (fails closed, controller.model_waypoint), which looks like an
outage. A waypoint in a namespace that is not enrolled fronts pods that no agent captures: only
Service traffic from enrolled clients reaches it, and anything dialling the pods directly skips
its L7 policy.
"""

from __future__ import annotations

from collections.abc import Iterator

from controller.analyze.findings import Finding
from controller.analyze.world import World, object_key
from controller.model import NO_WAYPOINT, USE_WAYPOINT_LABEL
from controller.model_waypoint import missing_waypoint
from nodemesh.manifests.validate_gateway import is_waypoint_gateway

_LABELLED_KINDS = ("Namespace", "Service", "Pod", "Deployment")


def missing_waypoints(world: World) -> Iterator[Finding]:
    """NM0301: a use-waypoint label naming no Gateway of class nodemesh-waypoint."""
    for obj in world.objects:
        if obj.get("kind") not in _LABELLED_KINDS or _runtime_pod(obj):
            continue
        kind, namespace, name = object_key(obj)
        name_label = _use_waypoint(obj)
        if not name_label or name_label == NO_WAYPOINT:
            continue
        where = name if kind == "Namespace" else namespace or "default"
        if world.has_waypoint_gateway(where, name_label):
            continue
        reason = missing_waypoint(where, name_label, identity="").unavailable()
        message = f"its {USE_WAYPOINT_LABEL} label names a waypoint that does not exist: {reason}"
        yield world.finding("NM0301", (kind, namespace, name), message)


def _runtime_pod(obj: dict) -> bool:
    """A pod the runtime published: its labels are its stored Pod's or its Deployment's, which
    are reported instead (once, where the user can fix them)."""
    return obj.get("kind") == "Pod" and bool(obj.get("status"))


def _use_waypoint(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    if obj.get("kind") == "Deployment":
        template = (obj.get("spec") or {}).get("template") or {}
        meta = template.get("metadata") or {}
    return (meta.get("labels") or {}).get(USE_WAYPOINT_LABEL) or ""


def unenrolled_waypoints(world: World) -> Iterator[Finding]:
    """NM0302: a waypoint Gateway in a namespace that is not enrolled."""
    for obj in world.of_kind("Gateway"):
        key = object_key(obj)
        if not is_waypoint_gateway(obj) or world.enrolled_namespace(key[1]) is not False:
            continue
        message = (
            f"namespace {key[1]!r} is not labelled nodemesh.io/dataplane-mode=ambient, so no "
            "agent captures its pods: only Service traffic from enrolled clients goes through "
            "this waypoint, and anything that dials the pods directly skips its L7 policy; "
            f"enroll the namespace ('kubectl label namespace {key[1]} "
            "nodemesh.io/dataplane-mode=ambient')"
        )
        yield world.finding("NM0302", key, message)


def unready_waypoints(world: World) -> Iterator[Finding]:
    """NM0303 (cluster only): a declared waypoint with no ready pod refuses all its traffic.

    Only the cluster's own Gateways: one a file declares is not applied yet, so has no pods."""
    if world.nodes is None:
        return  # files say nothing about what runs
    for waypoint in world.translated.snapshot.waypoints:
        reason = waypoint.unavailable()
        key = ("Gateway", waypoint.namespace, waypoint.name)
        if waypoint.exists and reason and key not in world.origins:  # a file's: not applied yet
            yield world.finding("NM0303", key, f"traffic through it is refused: {reason}")

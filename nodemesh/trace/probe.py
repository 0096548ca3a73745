"""What to trace, and where it really goes: FROM and TO as a user types them, resolved to addresses.

A user names things (`client`, `shop/web`, `svc/web`, `198.18.2.7`); the datapath sees a source
pod and an original destination `ip:port`, the address the app passed to connect(). Resolution
turns the first into the second against one snapshot, the way the app's own resolver would: a
Service name becomes its cluster IP (what DNS answers in local mode), a pod name its pod IP. Only
then does the explanation start, from the same inputs the capture hook would hand the agent.

A name that is both a pod and a Service is ambiguous and refused (prefix it `pod/` or `svc/`);
the port may be left out only when the target has exactly one (a Service port, or a pod's one
declared container port). Every failure is a `TraceError` saying what to type instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from controller.model import MeshSnapshot, Service, Workload


class TraceError(ValueError):
    """The probe cannot be explained as asked: the message says what to fix (exit 1 in the CLI)."""


@dataclass(frozen=True)
class HttpProbe:
    """The request to explain at a waypoint (`--http METHOD PATH`, `-H 'name: value'`)."""

    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()  # lower-case names, as the codecs hand them on


@dataclass(frozen=True)
class Probe:
    """FROM, TO and what is sent, as typed; `namespace` is the default for both names."""

    source: str  # "client" or "shop/client"
    target: str  # pod, "pod/x", Service, "svc/x", "ns/name", or an IP address
    namespace: str = "default"
    port: int | None = None
    http: HttpProbe | None = None


@dataclass(frozen=True)
class Target:
    """The original destination the capture hook would report, and what it names."""

    ip: str
    port: int
    label: str  # what the user asked for, resolved: "Service shop/web", "pod shop/web-1"


def parse_header(text: str) -> tuple[str, str]:
    """One `-H 'name: value'` as the waypoint sees it (name lower-cased, value stripped)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise TraceError(f"header {text!r} is not 'name: value'; write it as -H 'x-user: alice'")
    return name.strip().lower(), value.strip()


def source_workload(snapshot: MeshSnapshot, probe: Probe) -> Workload:
    """The running pod FROM names; a pod that is not running has no address to trace from."""
    namespace, name = _split(probe.source, probe.namespace)
    pod = _pod(snapshot, namespace, name)
    if pod is None:
        raise TraceError(
            f"no running pod {namespace}/{name} to trace from; see 'meshctl get pods -n "
            f"{namespace}' (give the namespace with -n or as namespace/name)"
        )
    return pod


def resolve_target(snapshot: MeshSnapshot, objects: Iterable[dict], probe: Probe) -> Target:
    """TO as an original destination (ip, port); see the module docstring for the rules."""
    if _is_ip(probe.target):
        if probe.port is None:
            raise TraceError(f"tracing to the address {probe.target} needs --port")
        return Target(str(ipaddress.ip_address(probe.target)), probe.port, probe.target)
    kind, rest = _kind(probe.target)
    namespace, name = _split(rest, _source_namespace(probe))
    pod = _pod(snapshot, namespace, name) if kind in ("", "pod") else None
    service = _service(snapshot, namespace, name) if kind in ("", "svc") else None
    if pod is not None and service is not None:
        raise TraceError(
            f"{namespace}/{name} is both a pod and a Service; write pod/{name} or svc/{name}"
        )
    if service is not None:
        return _service_target(service, probe.port)
    if pod is not None:
        return _pod_target(pod, list(objects), probe.port)
    what = {"pod": "running pod", "svc": "Service"}.get(kind, "running pod or Service")
    raise TraceError(
        f"no {what} {namespace}/{name}; see 'meshctl get pods -n {namespace}' and 'meshctl get "
        f"services -n {namespace}'"
    )


def _service_target(service: Service, port: int | None) -> Target:
    if not service.vips:
        raise TraceError(
            f"Service {service.key} is headless (no cluster IP); trace to one of its pods instead"
        )
    ports = [p.port for p in service.ports]
    if port is None:
        if len(ports) != 1:
            raise TraceError(f"Service {service.key} has ports {ports}; choose one with --port")
        port = ports[0]
    return Target(service.vips[0], port, f"Service {service.key}")


def _pod_target(pod: Workload, objects: list[dict], port: int | None) -> Target:
    if port is None:
        ports = _container_ports(objects, pod)
        if len(ports) != 1:
            listed = f"declares ports {ports}" if ports else "declares no container port"
            raise TraceError(f"pod {pod.namespace}/{pod.name} {listed}; choose one with --port")
        port = ports[0]
    return Target(pod.addresses[0], port, f"pod {pod.namespace}/{pod.name}")


def _container_ports(objects: list[dict], pod: Workload) -> list[int]:
    for obj in objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "Pod" and meta.get("uid") == pod.uid:
            containers = (obj.get("spec") or {}).get("containers") or ()
            return sorted({p["containerPort"] for c in containers for p in c.get("ports") or ()})
    return []


def _pod(snapshot: MeshSnapshot, namespace: str, name: str) -> Workload | None:
    return next(
        (
            w
            for w in snapshot.workloads
            if w.namespace == namespace and w.name == name and w.addresses  # not pending
        ),
        None,
    )


def _service(snapshot: MeshSnapshot, namespace: str, name: str) -> Service | None:
    return next((s for s in snapshot.services if s.key == f"{namespace}/{name}"), None)


def _split(text: str, default_namespace: str) -> tuple[str, str]:
    namespace, _, name = text.rpartition("/")
    if not name:
        raise TraceError(f"{text!r} names nothing; write name or namespace/name")
    return namespace or default_namespace, name


def _source_namespace(probe: Probe) -> str:
    """TO without a namespace is looked up where FROM runs (as a short DNS name would be)."""
    namespace, _, _ = probe.source.rpartition("/")
    return namespace or probe.namespace


def _kind(text: str) -> tuple[str, str]:
    """("svc", "shop/web") for "svc/shop/web"; ("", text) when no kind prefix is given."""
    kind, sep, rest = text.partition("/")
    return (kind, rest) if sep and kind in ("pod", "svc") else ("", text)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

"""What the router is compiled from: HTTPRoutes and the Services they attach to and send to.

The controller validates and normalizes every HTTPRoute (nodemesh.manifests.validate_route) before
it is pushed, so `RouteSource.rules` is Gateway API's `spec.rules` with every default written out.
The router still checks what only it can check (regexes compile, a prefix rewrite sits beside
prefix matches) and treats anything else missing as a malformed push.

Services are read through the `ServiceLike` protocol so the controller's model objects
(controller.model.Service) and the small `ServiceInfo` below are both accepted without this package
importing the controller.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class PortLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def port(self) -> int: ...


class ServiceLike(Protocol):
    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def ports(self) -> Sequence[PortLike]: ...


@dataclass(frozen=True)
class PortInfo:
    name: str  # the Service port's name; "" for a Service's only, unnamed port
    port: int  # the port clients dial on the Service's VIP


@dataclass(frozen=True)
class ServiceInfo:
    """The part of a Service routing needs; controller.model.Service has the same shape."""

    namespace: str
    name: str
    ports: tuple[PortInfo, ...]


@dataclass(frozen=True)
class ParentRef:
    """A Service an HTTPRoute attaches to (GAMMA); the fields of controller.model.RouteParent."""

    namespace: str  # the Service's namespace (already defaulted to the route's)
    name: str  # the Service's name
    port: int = 0  # only this Service port; 0: every port
    section_name: str = ""  # only the Service port of this name; "": every port


@dataclass(frozen=True)
class RouteSource:
    """One HTTPRoute as the router receives it."""

    namespace: str
    name: str
    parents: tuple[ParentRef, ...]
    rules: tuple[Mapping[str, Any], ...]  # normalized spec.rules, plain JSON data
    hostnames: tuple[str, ...] = ()  # kept for config dumps; GAMMA says not to route on them
    # Creation time as any number that sorts oldest first (seconds since the epoch works). Gateway
    # API breaks precedence ties by the oldest route; equal values fall back to "namespace/name".
    created: float = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_model(cls, route: Any, created: float = 0) -> RouteSource:
        """From controller.model.HttpRoute (or anything with its fields; `rules` may be JSON text).

        That model has no creation timestamp yet, so the caller passes one when it has it.
        """
        rules = route.rules
        if isinstance(rules, str):
            rules = json.loads(rules)
        return cls(
            namespace=route.namespace,
            name=route.name,
            parents=tuple(
                ParentRef(p.namespace, p.name, int(p.port), p.section_name) for p in route.parents
            ),
            rules=tuple(rules),
            hostnames=tuple(route.hostnames),
            created=created,
        )


@dataclass(frozen=True)
class BackendTarget:
    """A Service port requests are sent to; the caller resolves it to endpoints."""

    namespace: str
    name: str
    port: int

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"


class ServiceIndex:
    """Services by "namespace/name", for attaching routes and resolving backendRefs."""

    def __init__(self, services: Iterable[ServiceLike]) -> None:
        self._ports: dict[str, tuple[tuple[str, int], ...]] = {
            f"{s.namespace}/{s.name}": tuple((p.name, int(p.port)) for p in s.ports)
            for s in services
        }

    def service_keys(self) -> list[str]:
        return sorted(self._ports)

    def ports(self, key: str) -> tuple[int, ...]:
        """The port numbers of Service `key` ("namespace/name"), () if unknown."""
        return tuple(number for _, number in self._ports.get(key, ()))

    def attached_ports(self, parent: ParentRef) -> tuple[int, ...]:
        """The ports a parentRef attaches to: all of them, or the one its port/sectionName names."""
        return tuple(
            number
            for name, number in self._ports.get(f"{parent.namespace}/{parent.name}", ())
            if parent.port in (0, number) and parent.section_name in ("", name)
        )

    def resolve(self, ref: Mapping[str, Any], route_namespace: str) -> tuple[BackendTarget, str]:
        """A backendRef's target and "" if it is usable, else why not (Gateway API answers 500).

        The target is returned even when unusable so logs and config dumps can name it.
        """
        namespace = ref.get("namespace") or route_namespace
        target = BackendTarget(namespace, ref["name"], int(ref.get("port") or 0))
        group, kind = ref.get("group", ""), ref.get("kind", "Service")
        if (group, kind) != ("", "Service"):
            return target, f"backendRef kind {group or 'core'}/{kind} is not supported (Service)"
        key = f"{namespace}/{target.name}"
        if key not in self._ports:
            return target, f"backendRef Service {key} does not exist"
        if target.port not in self.ports(key):
            return target, f"backendRef Service {key} has no port {target.port}"
        return target, ""

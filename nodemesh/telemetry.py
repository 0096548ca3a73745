"""Istio's telemetry vocabulary, shared by the node agent (L4) and the waypoint (L7).

Both sides of the mesh describe one request with the same label names and the same values, so a
dashboard can join `istio_tcp_*` from the agents with `istio_requests_total` from a waypoint. The
names and values are Istio's (ztunnel's `src/proxy/metrics.rs` for the order, Envoy's
`%RESPONSE_FLAGS%` for the flags), so Istio's dashboards, Kiali and existing alerts read nodemesh
unchanged (DESIGN.md, User-facing API):

- Unknown values are "unknown"; the cluster is "Kubernetes" (Istio's default cluster id).
- Workload name: the pod's controller ("Deployment/web" -> "web"), else the pod name.
  Canonical service: label `service.istio.io/canonical-name`, `app.kubernetes.io/name`, `app`,
  else the workload name. Canonical revision: `service.istio.io/canonical-revision`,
  `app.kubernetes.io/version`, `version`, else "latest". `*_app`/`*_version` repeat them.
  A workload without owner or labels (the model's `PeerWorkload`) reports its pod name and
  "latest" until the model gives peers those fields.
- Principals are reported only for mutual TLS: a plaintext peer proved nothing.
- response_flags: "-" when nothing went wrong, else Envoy's short names joined with "," in
  Envoy's order ("UF,URX"), plus ztunnel's "DENY" and "CONNECT".

This module only derives strings; it holds no metric objects and no state. Workloads and Services
are read through the small protocols below, so it depends on nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

UNKNOWN = "unknown"
CLUSTER = "Kubernetes"


class WorkloadLike(Protocol):
    """What labels need from a workload. `owner` and `labels` are read when present."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...


class ServiceLike(Protocol):
    """What labels need from a Service."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def hostname(self) -> str: ...


class Reporter(StrEnum):
    SOURCE = "source"  # the client's node agent
    DESTINATION = "destination"  # the server's node agent
    WAYPOINT = "waypoint"  # the L7 proxy in between (Istio ambient's value)


class SecurityPolicy(StrEnum):
    MUTUAL_TLS = "mutual_tls"  # HBONE: both ends proved an identity
    NONE = "none"  # plaintext (Istio sidecars' value; ztunnel writes "unknown", same dashboards)


class ResponseFlag(StrEnum):
    """How a connection or request ended; Istio's dashboards split on "-" vs anything else.

    Envoy's flags are listed in Envoy's bit order, which is also the order `response_flags`
    joins them in, so one combination always renders as one label value.
    """

    NONE = "-"  # completed, or ended by either side without a mesh-made failure
    NO_HEALTHY_UPSTREAM = "UH"  # no ready endpoint for the Service (503)
    UPSTREAM_TIMEOUT = "UT"  # the route's request timeout expired (504)
    UPSTREAM_RESET = "UR"  # the upstream reset the stream (503)
    UPSTREAM_CONNECT_FAILURE = "UF"  # could not connect to the chosen endpoint (503)
    UPSTREAM_TERMINATED = "UC"  # the upstream connection closed mid-request (503)
    UPSTREAM_OVERFLOW = "UO"  # circuit breaker open: too many connections or requests (503)
    NO_ROUTE = "NR"  # no route matched the request (404)
    DELAY_INJECTED = "DI"  # fault injection delayed the request
    FAULT_INJECTED = "FI"  # fault injection aborted the request with its own status
    RATE_LIMITED = "RL"  # a local rate limit refused the request (429)
    DOWNSTREAM_TERMINATED = "DC"  # the client went away before the response was complete
    RETRY_LIMIT_EXCEEDED = "URX"  # retries used up, the last attempt's failure was returned
    STREAM_IDLE_TIMEOUT = "SI"  # no bytes either way for the idle timeout
    DOWNSTREAM_PROTOCOL_ERROR = "DPE"  # the client's request could not be parsed (400)
    UPSTREAM_PROTOCOL_ERROR = "UPE"  # the upstream's response could not be parsed (502)
    # Not Envoy's: Envoy reports an RBAC denial only in response_code_details. ztunnel (and
    # nodemesh, at both L4 and L7) flags it, so a denial is never mistaken for an app's 403.
    DENY = "DENY"
    CONNECT = "CONNECT"  # ztunnel: the HBONE peer or plaintext target could not be reached


_FLAG_ORDER = {flag: i for i, flag in enumerate(ResponseFlag)}

# The flags an L4 reporter writes: ztunnel's vocabulary plus UH. A connection that cannot reach
# its upstream is CONNECT at L4 (ztunnel), not Envoy's UF, so TCP dashboards see one spelling.
L4_FLAGS = frozenset(
    {ResponseFlag.NONE, ResponseFlag.DENY, ResponseFlag.CONNECT, ResponseFlag.NO_HEALTHY_UPSTREAM}
)


def l4_flag(flag: ResponseFlag | str) -> ResponseFlag:
    """`flag` as a ResponseFlag, refused (ValueError) unless an L4 reporter may write it."""
    found = ResponseFlag(flag)
    if found not in L4_FLAGS:
        allowed = ", ".join(sorted(f.value for f in L4_FLAGS))
        raise ValueError(f"response flag {found.value!r} is L7-only; L4 telemetry takes {allowed}")
    return found


def response_flags(flags: Iterable[ResponseFlag | str]) -> str:
    """The response_flags value of a set of flags: "-" for none, else "UF,URX" in Envoy's order.

    Because the order is fixed by the enum, the label has at most one value per combination,
    and every value is made of enum members (unknown strings raise ValueError).
    """
    chosen = {ResponseFlag(f) for f in flags} - {ResponseFlag.NONE}
    if not chosen:
        return ResponseFlag.NONE.value
    return ",".join(f.value for f in sorted(chosen, key=_FLAG_ORDER.__getitem__))


# The labels both reporters put first: reporter, the source side, the Service, the destination
# side. ztunnel's CommonTrafficLabels order (locality labels left out: nodemesh has no zones).
# fmt: off
PEER_LABELS = (
    "reporter",
    "source_workload", "source_canonical_service", "source_canonical_revision",
    "source_workload_namespace", "source_principal", "source_app", "source_version",
    "source_cluster",
    "destination_service", "destination_service_namespace", "destination_service_name",
    "destination_workload", "destination_canonical_service", "destination_canonical_revision",
    "destination_workload_namespace", "destination_principal", "destination_app",
    "destination_version", "destination_cluster",
)
# fmt: on
TCP_LABELS = (*PEER_LABELS, "request_protocol", "response_flags", "connection_security_policy")


def workload_name(w: WorkloadLike) -> str:
    owner = getattr(w, "owner", "")  # PeerWorkload has none
    return owner.partition("/")[2] if owner else w.name


def _first_label(w: WorkloadLike, keys: tuple[str, ...], default: str) -> str:
    labels = dict(getattr(w, "labels", ()))
    return next((labels[k] for k in keys if labels.get(k)), default)


def canonical_service(w: WorkloadLike) -> str:
    keys = ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
    return _first_label(w, keys, workload_name(w))


def canonical_revision(w: WorkloadLike) -> str:
    keys = ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version")
    return _first_label(w, keys, "latest")


def side_labels(w: WorkloadLike | None, principal: str | None) -> tuple[str, ...]:
    """workload, canonical service, revision, namespace, principal, app, version, cluster."""
    principal = principal or UNKNOWN
    if w is None:
        return (UNKNOWN,) * 4 + (principal,) + (UNKNOWN,) * 3
    service, revision = canonical_service(w), canonical_revision(w)
    return (workload_name(w), service, revision, w.namespace, principal, service, revision, CLUSTER)


def service_labels(service: ServiceLike | None) -> tuple[str, str, str]:
    """destination_service (the hostname), destination_service_namespace, _name."""
    if service is None:
        return (UNKNOWN,) * 3
    return (service.hostname, service.namespace, service.name)


def peer_labels(
    reporter: Reporter,
    security: SecurityPolicy,
    source: WorkloadLike | None,
    destination: WorkloadLike | None,
    service: ServiceLike | None,
    source_principal: str | None = None,
    destination_principal: str | None = None,
) -> tuple[str, ...]:
    """Values for PEER_LABELS, in order; principals are dropped unless the hop was mutual TLS."""
    if security is not SecurityPolicy.MUTUAL_TLS:
        source_principal = destination_principal = None
    return (
        reporter.value,
        *side_labels(source, source_principal),
        *service_labels(service),
        *side_labels(destination, destination_principal),
    )


def tcp_labels(
    reporter: Reporter,
    security: SecurityPolicy,
    source: WorkloadLike | None,
    destination: WorkloadLike | None,
    service: ServiceLike | None,
    source_principal: str | None = None,
    destination_principal: str | None = None,
    flag: ResponseFlag = ResponseFlag.NONE,
) -> tuple[str, ...]:
    """Values for TCP_LABELS, in order; `flag` must be one of L4_FLAGS (else ValueError)."""
    peers = peer_labels(
        reporter, security, source, destination, service, source_principal, destination_principal
    )
    return (*peers, "tcp", l4_flag(flag).value, security.value)


def rfc3339(ts: float) -> str:
    """Unix time as RFC 3339 UTC with milliseconds ("2023-11-14T22:13:20.000Z"), as logs use."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_address(address: tuple[str, int]) -> str:
    """host:port, with an IPv6 host bracketed so the port stays unambiguous."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

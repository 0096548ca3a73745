"""Source-workload metadata on a CONNECT, as ztunnel sends it to a waypoint: the `baggage` header.

A waypoint knows only the Services it serves and their endpoints, not every client; yet its
telemetry must name the client workload (`source_workload`, `source_canonical_service`, ...), as
Istio's does. The source agent knows its pod, so it describes it in a W3C `baggage` header on the
HBONE CONNECT with Istio's keys (`k8s.namespace.name`, `k8s.<kind>.name`, `service.name`,
`service.version`); the waypoint reads it back. The header is set by the agent, never by the
application (an app cannot add headers to its agent's CONNECT), and the waypoint still accepts it
only when its namespace is the one the peer certificate proves.

The same header tells the destination agent which Service the client dialled
(`nodemesh.destination.service`, its hostname), which only the source saw: the CONNECT names
the pod's address, so without it the destination's series carry `destination_service="unknown"`.
ztunnel does the same from a `Forwarded: host=`. It is a claim, not a fact: the receiver may
label with it only after checking that the Service selects the pod it is delivering to
(node_agent.telemetry.claimed_service); this module only carries it.

Pure: strings in, a small workload view (or a claimed hostname) out.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

MAX_BAGGAGE = 1024  # bytes; more is not ours
SERVICE_KEY = "nodemesh.destination.service"  # the dialled Service's hostname (a claim)
_KIND_KEYS = (
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.job.name",
    "k8s.pod.name",
)


@dataclass(frozen=True)
class SourceWorkload:
    """What telemetry needs about a client: `nodemesh.telemetry.WorkloadLike` and its labels."""

    name: str  # the workload (Deployment) name, else the pod's
    namespace: str
    labels: tuple[tuple[str, str], ...] = ()
    owner: str = ""


def encode(namespace: str, pod: str, owner: str, app: str, version: str) -> str:
    """The baggage value for a pod; `owner` is "Kind/name" ("" for a bare pod)."""
    kind, _, owner_name = owner.partition("/")
    key = f"k8s.{kind.lower()}.name" if owner_name else "k8s.pod.name"
    items = [
        ("k8s.namespace.name", namespace),
        (key, owner_name or pod),
        ("service.name", app),
        ("service.version", version),
    ]
    return ",".join(f"{k}={quote(v, safe='')}" for k, v in items if v)


def with_service(value: str, hostname: str | None) -> str:
    """`value` (a pod's baggage) plus the Service hostname this connection dialled, if any.

    Per connection, while the pod's own part is encoded once: only the Service changes."""
    if not hostname:
        return value
    member = f"{SERVICE_KEY}={quote(hostname, safe='')}"
    return f"{value},{member}" if value else member


def claimed_service(value: str | None) -> str | None:
    """The Service hostname the sender says its client dialled, or None if absent or malformed.

    Unchecked: the caller must verify it against its own config before using it."""
    fields = _fields(value)
    return (fields or {}).get(SERVICE_KEY) or None


def decode(value: str | None, expected_namespace: str | None) -> SourceWorkload | None:
    """The workload a baggage value describes, or None if absent, malformed or not consistent
    with the namespace the peer's certificate proves."""
    fields = _fields(value) if expected_namespace is not None else None
    if fields is None:
        return None
    namespace = fields.get("k8s.namespace.name")
    name = next((fields[k] for k in _KIND_KEYS if fields.get(k)), "")
    if namespace != expected_namespace or not name:
        return None
    labels = tuple(
        (label, fields[key])
        for label, key in (("app", "service.name"), ("version", "service.version"))
        if fields.get(key)
    )
    return SourceWorkload(name=name, namespace=namespace, labels=labels)


def _fields(value: str | None) -> dict[str, str] | None:
    """The members of a baggage value (properties dropped), or None if absent or malformed."""
    if not value or len(value) > MAX_BAGGAGE:
        return None
    fields: dict[str, str] = {}
    for member in value.split(","):
        key, sep, raw = member.partition("=")
        if not sep:
            return None
        fields[key.strip()] = unquote(raw.split(";", 1)[0].strip())
    return fields

"""Registry objects -> mesh model: one pure function, `translate`, and the rules it applies.

Input is every object the registry holds, as Kubernetes-shaped dicts: in local mode the store's
objects plus the runtime's pods (`status.json`'s "pods"), in Kubernetes mode what the API server
lists. Kinds the mesh does not read (Deployment, ServiceAccount, ...) are passed over.

- A Pod is a Workload once it runs: it has an address (status.podIP/podIPs) and has not finished
  (phase Succeeded/Failed). The store's own Pod objects are intents without a status, and are
  passed over: the runtime's published pod for them is the workload. Host-network pods are not
  workloads either (they have no netns of their own to capture; Istio skips them too).
- A pod scheduled to a node (spec.nodeName, a uid and a status) but with no address yet is a
  *pending* workload: `addresses` empty, never ready. Kubernetes publishes the IP only after CNI
  ADD returned, and ADD waits for the node's agent to capture the pod, so that agent must know
  the pod (identity, enrollment) before it has an IP. Only the node's own agent receives it
  (controller.scope); no Service endpoint, waypoint address or peer ever names it.
- Enrollment: the namespace carries `nodemesh.io/dataplane-mode: ambient` and the pod is not
  labelled `nodemesh.io/dataplane-mode: none`. A namespace with no Namespace object (deleted, or a
  built-in one never applied) has no labels, so its pods are not enrolled. A waypoint's own pods
  are never enrolled.
- Waypoint: the object's own `nodemesh.io/use-waypoint` label (pod or Service) wins over its
  namespace's; the value `none` opts out of the namespace's waypoint. Gateway pods (waypoints
  themselves) never get a waypoint.
- Service endpoints: ready pods of the Service's namespace that its selector picks (enrolled or
  not), with named targetPorts resolved per pod as Kubernetes does. A Service without a selector
  gets its endpoints from its EndpointSlices instead (controller.translate_endpointslices, which
  says why slices are not read for the others).
- AuthorizationPolicy, PeerAuthentication and HTTPRoute go through nodemesh.manifests' validator
  and normalizer (idempotent on objects the store already normalized), so the model only ever sees
  specs of the documented shape, also when they come from a Kubernetes API server
  (controller.translate_policy).
- Waypoints: Gateways of class nodemesh-waypoint, their ready pods, and the waypoints labels name
  without a Gateway (controller.translate_waypoints).
- TrafficPolicies: validated the same way; one per Service, the oldest winning a contested one
  and each loss reported (controller.translate_traffic).

A broken object becomes a `TranslateError` and is left out; it never raises and never stops the
rest from translating.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from controller.model import (
    DATAPLANE_MODE_AMBIENT,
    DATAPLANE_MODE_LABEL,
    DATAPLANE_MODE_NONE,
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_TRUST_DOMAIN,
    NO_WAYPOINT,
    USE_WAYPOINT_LABEL,
    Endpoint,
    MeshSnapshot,
    Service,
    ServicePort,
    Workload,
    freeze_labels,
    service_hostname,
)
from controller.model_waypoint import GATEWAY_NAME_LABEL
from controller.translate_endpointslices import SliceIndex, endpoint_slice
from controller.translate_errors import TranslateError, unique_by, unique_keys, unique_vips
from controller.translate_policy import (
    Invalid,
    authorization_policy,
    http_route,
    peer_authentication,
)
from controller.translate_traffic import one_per_service, traffic_policy
from controller.translate_waypoints import build_waypoints, is_waypoint_pod, waypoint_gateway
from nodemesh.identity import SpiffeId, check_trust_domain
from nodemesh.local.workloads import resolve_target_port, selects

TEMPLATE_HASH_LABEL = "pod-template-hash"
_FINISHED_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class TranslateResult:
    snapshot: MeshSnapshot  # the model of every object that translated
    errors: tuple[TranslateError, ...]  # the objects that did not (by kind, then input order)


@dataclass(frozen=True)
class _Pod:
    """A workload and what endpoint resolution still needs from its pod."""

    workload: Workload
    containers: tuple[dict, ...]


def translate(
    objects: Iterable[dict],
    *,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    root_namespace: str = DEFAULT_ROOT_NAMESPACE,
) -> TranslateResult:
    """The mesh model of `objects`; the broken ones are reported in `errors` and left out."""
    check_trust_domain(trust_domain)  # a configuration bug, not a bad object: raises
    errors: list[TranslateError] = []
    by_kind = _partition(objects, errors)
    namespaces = _namespace_labels(by_kind.get("Namespace", []), errors)

    def each(kind: str, convert: Callable[[dict], Any]) -> list:
        results = (_guarded(obj, convert, errors) for obj in by_kind.get(kind, []))
        return [result for result in results if result is not None]

    gateways = unique_keys(each("Gateway", waypoint_gateway), "Gateway", errors)
    declared = {gateway.key for gateway in gateways}
    pods = unique_by(
        each("Pod", lambda obj: _pod(obj, namespaces, trust_domain, declared)),
        lambda pod: pod.workload.uid,
        lambda pod: ("Pod", pod.workload.namespace, pod.workload.name),
        "another pod has the same metadata.uid",
        errors,
    )
    index = _ReadyPodIndex(pods)
    uids = {address: pod.workload.uid for pod in pods for address in pod.workload.addresses}
    slices = SliceIndex(each("EndpointSlice", endpoint_slice), uids)
    services = each("Service", lambda obj: _service(obj, namespaces, index, slices))
    services = unique_vips(unique_keys(services, "Service", errors), errors)
    authz = each("AuthorizationPolicy", lambda obj: authorization_policy(obj, root_namespace))
    peerauthn = each("PeerAuthentication", lambda obj: peer_authentication(obj, root_namespace))
    routes = each("HTTPRoute", http_route)
    traffic = unique_keys(each("TrafficPolicy", traffic_policy), "TrafficPolicy", errors)
    traffic, lost = one_per_service(traffic)
    errors += [TranslateError("TrafficPolicy", *loss) for loss in lost]
    workloads = [pod.workload for pod in pods]
    snapshot = MeshSnapshot.build(
        workloads,
        services,
        unique_keys(authz, "AuthorizationPolicy", errors),
        unique_keys(peerauthn, "PeerAuthentication", errors),
        unique_keys(routes, "HTTPRoute", errors),
        trust_domain,
        waypoints=build_waypoints(gateways, workloads, services, trust_domain),
        traffic_policies=traffic,
    )
    return TranslateResult(snapshot, tuple(errors))


# --- the rules, as small pure functions -----------------------------------------------------------


def is_enrolled(namespace_labels: dict[str, str], pod_labels: dict[str, str]) -> bool:
    """Ambient enrollment: the namespace opts in, the pod may opt out."""
    return (
        namespace_labels.get(DATAPLANE_MODE_LABEL) == DATAPLANE_MODE_AMBIENT
        and pod_labels.get(DATAPLANE_MODE_LABEL) != DATAPLANE_MODE_NONE
    )


def waypoint_for(own_labels: dict[str, str], namespace_labels: dict[str, str]) -> str:
    """The waypoint name: the object's own label, else its namespace's; `none` means no waypoint."""
    if GATEWAY_NAME_LABEL in own_labels:
        return ""  # a waypoint's own pods: sending their traffic to a waypoint would loop
    name = own_labels.get(USE_WAYPOINT_LABEL) or namespace_labels.get(USE_WAYPOINT_LABEL) or ""
    return "" if name == NO_WAYPOINT else name


def owner_of(metadata: dict[str, Any]) -> str:
    """ "Kind/name" of the pod's controller; a Deployment's ReplicaSet gives the Deployment."""
    refs = metadata.get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not ref:
        return ""
    kind, name = ref["kind"], ref["name"]
    template_hash = (metadata.get("labels") or {}).get(TEMPLATE_HASH_LABEL)
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return f"Deployment/{name[: -len(template_hash) - 1]}"
    return f"{kind}/{name}"


def is_ready(pod: dict[str, Any]) -> bool:
    """Ready condition True and not being deleted (terminating pods take no new connections)."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("display") == "Terminating":
        return False
    conditions = status.get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


# --- objects --------------------------------------------------------------------------------------


def _partition(objects: Iterable[dict], errors: list[TranslateError]) -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for obj in objects:
        kind = obj.get("kind") if isinstance(obj, dict) else None
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if not isinstance(kind, str) or not isinstance(meta, dict):
            message = "not an object with kind and metadata; the registry handed over garbage"
            errors.append(TranslateError(kind if isinstance(kind, str) else "", "", "", message))
            continue
        if not isinstance(meta.get("name"), str) or not meta["name"]:
            errors.append(TranslateError(kind, _namespace(meta), "", "metadata.name is missing"))
            continue
        by_kind.setdefault(kind, []).append(obj)
    return by_kind


def _namespace(meta: dict) -> str:
    namespace = meta.get("namespace")
    return namespace if isinstance(namespace, str) else ""


def _guarded(obj: dict, convert: Callable[[dict], Any], errors: list[TranslateError]) -> Any:
    """convert(obj), or None with the reason recorded: one bad object never stops the others."""
    meta = obj["metadata"]
    try:
        return convert(obj)
    except Invalid as exc:
        message = str(exc)
    except KeyError as exc:
        message = f"malformed object: required field {exc} is missing"
    except (TypeError, ValueError, AttributeError) as exc:
        message = f"malformed object: {exc}"
    errors.append(TranslateError(obj["kind"], _namespace(meta), meta["name"], message))
    return None


def _namespace_labels(namespaces: list[dict], errors: list[TranslateError]) -> dict[str, dict]:
    labels = {}
    for obj in namespaces:
        frozen = _guarded(obj, lambda o: freeze_labels(o["metadata"].get("labels")), errors)
        labels[obj["metadata"]["name"]] = dict(frozen or ())
    return labels


def _pod(
    obj: dict, namespaces: dict[str, dict], trust_domain: str, waypoints: set[str]
) -> _Pod | None:
    """The workload of a running pod; `waypoints` are the declared ones, "<namespace>/<name>"."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    status = obj.get("status") or {}
    addresses = _pod_addresses(status)
    if status.get("phase") in _FINISHED_PHASES:
        return None  # not running any more: nothing to route to
    if not addresses and not _scheduled(obj):
        return None  # not on a node yet (or a local intent): nothing to capture either
    if spec.get("hostNetwork"):
        return None  # the node's own address and netns: nothing the mesh can capture (as Istio)
    namespace = _required(meta, "namespace", "metadata")
    labels = freeze_labels(meta.get("labels"))
    namespace_labels = namespaces.get(namespace, {})
    service_account = spec.get("serviceAccountName") or "default"
    sandbox = obj.get("sandbox") or {}
    workload = Workload(
        uid=_required(meta, "uid", "metadata"),
        name=meta["name"],
        namespace=namespace,
        node=_required(spec, "nodeName", "spec"),
        addresses=addresses,
        service_account=service_account,
        identity=str(SpiffeId(trust_domain, namespace, service_account)),
        labels=labels,
        enrolled=is_enrolled(namespace_labels, dict(labels))
        and not is_waypoint_pod(namespace, dict(labels), waypoints),
        waypoint=waypoint_for(dict(labels), namespace_labels),
        ready=is_ready(obj) and bool(addresses),
        netns=sandbox.get("netns") or "",
        cgroup=sandbox.get("cgroup") or "",
        owner=owner_of(meta),
    )
    return _Pod(workload, tuple(spec.get("containers") or ()))


def _scheduled(obj: dict) -> bool:
    """A pod the API server has bound to a node (a pending workload until it has an IP).

    The local store's Pod objects are intents with no status and no uid'd binding: left out."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    return bool(spec.get("nodeName") and meta.get("uid") and obj.get("status"))


def _pod_addresses(status: dict) -> tuple[str, ...]:
    listed = [entry["ip"] for entry in status.get("podIPs") or []]
    primary = [status["podIP"]] if status.get("podIP") else []
    return tuple(dict.fromkeys(_ip(address, "status.podIP") for address in primary + listed))


def _required(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise Invalid(f"{where}.{key} is missing")
    return value


def _ip(value: object, field: str) -> str:
    canonical = _canonical_ip(value) if isinstance(value, str) else None
    if canonical is None:
        raise Invalid(f"{field}: {value!r} is not an IP address")
    return canonical


@functools.lru_cache(maxsize=1 << 16)
def _canonical_ip(text: str) -> str | None:
    """Parsing is most of a pod's translation cost and addresses repeat on every refresh."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class _ReadyPodIndex:
    """Ready pods by (namespace, label key, label value), so a selector costs what it selects.

    Matching every Service's selector against every pod is O(services × pods): 10 s for 1,000
    services and 10,000 pods. Starting from the smallest posting list of the selector's pairs
    makes it proportional to the endpoints found.
    """

    def __init__(self, pods: Iterable[_Pod]) -> None:
        self._by_label: dict[tuple[str, str, str], list[_Pod]] = {}
        for pod in pods:
            if not pod.workload.ready:
                continue
            for key, value in pod.workload.labels:
                self._by_label.setdefault((pod.workload.namespace, key, value), []).append(pod)

    def selected(self, namespace: str, selector: dict[str, str]) -> list[_Pod]:
        if not selector:
            return []  # an empty selector selects nothing (endpoints are managed by hand)
        postings = [self._by_label.get((namespace, k, v), []) for k, v in selector.items()]
        smallest = min(postings, key=len)
        return [pod for pod in smallest if selects(selector, dict(pod.workload.labels))]


def _service(
    obj: dict, namespaces: dict[str, dict], pods: _ReadyPodIndex, slices: SliceIndex
) -> Service:
    meta, spec = obj["metadata"], obj["spec"]
    namespace = _required(meta, "namespace", "metadata")
    labels = dict(freeze_labels(meta.get("labels")))
    ports = tuple(_service_port(port) for port in spec.get("ports") or [])
    selector = dict(freeze_labels(spec.get("selector")))
    members = pods.selected(namespace, selector)
    members.sort(key=lambda pod: _address_order(pod.workload.addresses[0]))
    return Service(
        name=meta["name"],
        namespace=namespace,
        hostname=service_hostname(namespace, meta["name"]),
        vips=_vips(spec),
        ports=ports,
        endpoints=tuple(_endpoint(pod, ports) for pod in members)
        if selector
        else slices.endpoints_of(namespace, meta["name"], ports),
        waypoint=waypoint_for(labels, namespaces.get(namespace, {})),
    )


@functools.lru_cache(maxsize=1 << 16)
def _address_order(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return (ip.version, int(ip))


def _service_port(port: dict) -> ServicePort:
    number = port["port"]
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
        raise Invalid(f"spec.ports: port {number!r} is not a port number 1-65535")
    target = port.get("targetPort", number)
    if isinstance(target, str) and target.isdigit():
        target = int(target)
    if not isinstance(target, int | str) or isinstance(target, bool) or target in ("", 0):
        raise Invalid(f"spec.ports: targetPort {target!r} is neither a port number nor a name")
    return ServicePort(
        name=port.get("name") or "",
        port=number,
        target_port=target,
        protocol=port.get("protocol") or "TCP",
        app_protocol=port.get("appProtocol") or "",
    )


def _vips(spec: dict) -> tuple[str, ...]:
    listed = [spec.get("clusterIP"), *(spec.get("clusterIPs") or [])]
    vips = [_ip(ip, "spec.clusterIP") for ip in listed if ip and ip != "None"]
    return tuple(dict.fromkeys(vips))


def _endpoint(pod: _Pod, ports: tuple[ServicePort, ...]) -> Endpoint:
    resolved = ((p.port, resolve_target_port(p.target_port, pod.containers)) for p in ports)
    return Endpoint(
        workload_uid=pod.workload.uid,
        address=pod.workload.addresses[0],
        ports=tuple((port, target) for port, target in resolved if target is not None),
    )

"""The kinds nodemesh accepts, and what it does with Kubernetes fields it does not use.

`KINDS` maps (apiVersion, kind) to a `KindSpec`: whether objects live in a namespace, the syntax of
their names, a validator that reports problems into a `Check`, and a normalizer that writes defaults
into a private copy of an object that validated cleanly.

`IGNORED_FIELDS` and `UNSUPPORTED_FIELDS` are the one place that says how local mode treats real
Kubernetes fields it has no use for. Validators know only the fields they read; a field in neither
those nor these tables is a typo and is refused with a did-you-mean hint, as `kubectl apply
--validate=strict` does. The Kubernetes entries match kubernetes-client 37 (tests check it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests import validate_deployment as deployment
from nodemesh.manifests import validate_endpointslice as endpointslice
from nodemesh.manifests import validate_gateway as gateway
from nodemesh.manifests import validate_identity as identity
from nodemesh.manifests import validate_mesh as mesh
from nodemesh.manifests import validate_meta as meta
from nodemesh.manifests import validate_pod as pod
from nodemesh.manifests import validate_probe as probe
from nodemesh.manifests import validate_route as route
from nodemesh.manifests import validate_route_filters as route_filters
from nodemesh.manifests import validate_service as service
from nodemesh.manifests import validate_traffic as traffic
from nodemesh.manifests.check import Check, FieldTables

# Real fields accepted so manifests written for a cluster apply unchanged, then ignored: they
# configure images, kernels, schedulers, storage and cloud load balancers that local mode does not
# have (processes run from the host filesystem in a netns and cgroup on one machine).
# fmt: off
IGNORED_FIELDS: dict[str, frozenset[str]] = {
    "ObjectMeta": frozenset(
        {
            "creationTimestamp", "deletionGracePeriodSeconds", "deletionTimestamp", "finalizers",
            "generateName", "generation", "managedFields", "ownerReferences", "resourceVersion",
            "selfLink", "uid",
        }
    ),
    "Namespace": frozenset({"spec", "status"}),
    "ServiceAccount": frozenset({"secrets", "imagePullSecrets", "automountServiceAccountToken"}),
    "Pod": frozenset({"status"}),
    "PodSpec": frozenset(
        {
            "activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "dnsConfig",
            "dnsPolicy", "enableServiceLinks", "evictionResponders", "hostAliases", "hostIPC",
            "hostPID", "hostUsers", "hostname", "hostnameOverride",
            "imagePullSecrets", "nodeSelector", "os", "overhead", "preemptionPolicy", "priority",
            "priorityClassName", "readinessGates", "resourceClaims", "resources",
            "runtimeClassName", "schedulerName", "schedulingGates", "schedulingGroup",
            "securityContext", "serviceAccount", "setHostnameAsFQDN", "shareProcessNamespace",
            "subdomain", "tolerations", "topologySpreadConstraints", "volumes",
        }
    ),
    "Container": frozenset(
        {
            "image", "imagePullPolicy", "lifecycle", "resizePolicy", "resources", "restartPolicy",
            "restartPolicyRules", "securityContext", "stdin", "stdinOnce",
            "terminationMessagePath", "terminationMessagePolicy", "tty", "volumeDevices",
            "volumeMounts",
        }
    ),
    "ContainerPort": frozenset({"hostIP", "hostPort"}),
    "ObjectFieldSelector": frozenset({"apiVersion"}),
    "Probe": frozenset({"terminationGracePeriodSeconds"}),
    "TCPSocketAction": frozenset({"host"}),
    "HTTPGetAction": frozenset({"host", "httpHeaders", "protocol"}),
    "Deployment": frozenset({"status"}),
    "DeploymentSpec": frozenset({"paused", "progressDeadlineSeconds"}),
    "Service": frozenset({"status"}),
    "ServiceSpec": frozenset(
        {
            "allocateLoadBalancerNodePorts", "clusterIPs", "externalIPs", "externalName",
            "externalTrafficPolicy", "healthCheckNodePort", "internalTrafficPolicy", "ipFamilies",
            "ipFamilyPolicy", "loadBalancerClass", "loadBalancerIP", "loadBalancerSourceRanges",
            "publishNotReadyAddresses", "sessionAffinity", "sessionAffinityConfig",
            "trafficDistribution",
        }
    ),
    "ServicePort": frozenset({"nodePort"}),
    "AuthorizationPolicy": frozenset({"status"}),
    "PeerAuthentication": frozenset({"status"}),
    "HTTPRoute": frozenset({"status"}),
    "Gateway": frozenset({"status"}),
    # The Gateway API CRD defaults allowedRoutes; routes attach to a waypoint's Services instead.
    "Listener": frozenset({"allowedRoutes"}),
    "TrafficPolicy": frozenset({"status"}),
    # Topology and naming hints for kube-proxy and DNS; the mesh routes by address alone.
    "Endpoint": frozenset({"deprecatedTopology", "hints", "hostname", "nodeName", "zone"}),
    "ObjectReference": frozenset({"apiVersion", "fieldPath", "resourceVersion"}),
}
# fmt: on

# Real fields refused with a reason, because ignoring them would change what the object means: a
# missing init step or environment variable, or a security policy quietly allowing more.
_SECRETS = "local mode has no ConfigMaps or Secrets; set the value under env[].value"
UNSUPPORTED_FIELDS: dict[str, dict[str, str]] = {
    "PodSpec": {
        "initContainers": "init containers are not run in local mode; do the setup in command",
        "ephemeralContainers": "ephemeral containers are not supported in local mode",
    },
    "Container": {"envFrom": f"envFrom is not supported: {_SECRETS}"},
    "EnvVarSource": {
        "configMapKeyRef": f"not supported: {_SECRETS}",
        "secretKeyRef": f"not supported: {_SECRETS}",
        "fileKeyRef": "not supported in local mode; only fieldRef is",
        "resourceFieldRef": "not supported: local mode does not manage container resources",
    },
    "Probe": {"grpc": "gRPC probes are not supported in local mode; use tcpSocket or exec"},
    "LabelSelector": {"matchExpressions": "not supported in local mode; use matchLabels"},
    "AuthorizationPolicySpec": {
        "targetRef": "deprecated in Istio and not supported; use targetRefs",
        "provider": "not supported: nodemesh has no external authorization providers",
    },
    "Source": {
        "serviceAccounts": "not supported yet; use principals: ['cluster.local/ns/NS/sa/NAME']",
        "notServiceAccounts": "not supported yet; use notPrincipals",
    },
    "HTTPRouteRule": {
        "sessionPersistence": "experimental Gateway API field, not supported by nodemesh",
    },
    "HTTPRouteFilter": {
        "cors": "experimental Gateway API filter, not supported by nodemesh",
        "externalAuth": "experimental Gateway API filter, not supported by nodemesh",
    },
    "GatewaySpec": {
        "addresses": "a waypoint's addresses are its pods' IPs; nodemesh assigns them",
        "infrastructure": "not supported yet: nodemesh writes the waypoint's Deployment itself",
        "allowedListeners": "experimental Gateway API field, not supported by nodemesh",
        "backendTLS": "not supported: a waypoint reaches its backends over HBONE mutual TLS",
    },
    "Listener": {
        "hostname": "a waypoint's HBONE listener serves every host; remove hostname",
        "tls": "HBONE brings its own mutual TLS (the mesh identities); remove tls",
    },
}

FIELD_TABLES = FieldTables(ignored=IGNORED_FIELDS, unsupported=UNSUPPORTED_FIELDS)

# Fields each object type's validator reads, by type name (documentation and tests).
USED_FIELDS: dict[str, frozenset[str]] = {
    **meta.USED_FIELDS,
    **identity.USED_FIELDS,
    **pod.USED_FIELDS,
    **probe.USED_FIELDS,
    **deployment.USED_FIELDS,
    **service.USED_FIELDS,
    **mesh.USED_FIELDS,
    **route.USED_FIELDS,
    **gateway.USED_FIELDS,
    **route_filters.USED_FIELDS,
    **traffic.USED_FIELDS,
    **endpointslice.USED_FIELDS,
}


@dataclass(frozen=True)
class KindSpec:
    api_version: str
    kind: str
    validate: Callable[[dict[str, Any], str, Check], None]  # (object, path prefix, check)
    normalize: Callable[[dict[str, Any]], None]  # in place, only once validation passed
    namespaced: bool = True
    name_rule: Callable[[str], str | None] = names.dns1123_subdomain


_NODEMESH_SECURITY = "security.nodemesh.io/v1"
KINDS: dict[tuple[str, str], KindSpec] = {
    (spec.api_version, spec.kind): spec
    for spec in (
        KindSpec(
            "v1",
            "Namespace",
            identity.validate_namespace,
            identity.normalize_nothing,
            namespaced=False,
            name_rule=names.dns1123_label,
        ),
        KindSpec(
            "v1", "ServiceAccount", identity.validate_service_account, identity.normalize_nothing
        ),
        KindSpec("v1", "Pod", pod.validate_pod, pod.normalize_pod),
        KindSpec(
            "v1",
            "Service",
            service.validate_service,
            service.normalize_service,
            name_rule=names.dns1035_label,
        ),
        KindSpec(
            "apps/v1", "Deployment", deployment.validate_deployment, deployment.normalize_deployment
        ),
        KindSpec(
            _NODEMESH_SECURITY,
            "AuthorizationPolicy",
            mesh.validate_authorization_policy,
            mesh.normalize_authorization_policy,
        ),
        KindSpec(
            _NODEMESH_SECURITY,
            "PeerAuthentication",
            mesh.validate_peer_authentication,
            mesh.normalize_peer_authentication,
        ),
        KindSpec(
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            route.validate_http_route,
            route.normalize_http_route,
        ),
        KindSpec(
            "networking.nodemesh.io/v1",
            "TrafficPolicy",
            traffic.validate_traffic_policy,
            traffic.normalize_traffic_policy,
        ),
        KindSpec(
            gateway.API_VERSION,
            "Gateway",
            gateway.validate_gateway,
            gateway.normalize_gateway,
            name_rule=names.dns1123_label,  # also a label value and a service account name
        ),
        KindSpec(
            endpointslice.API_VERSION,
            "EndpointSlice",
            endpointslice.validate_endpoint_slice,
            endpointslice.normalize_endpoint_slice,
        ),
    )
}


def lookup(api_version: str, kind: str) -> KindSpec | None:
    return KINDS.get((api_version, kind))


def api_versions_of(kind: str) -> list[str]:
    """The apiVersions nodemesh serves `kind` under (empty if the kind is unknown)."""
    return [spec.api_version for spec in KINDS.values() if spec.kind == kind]


def supported_kinds() -> list[str]:
    """ "apiVersion kind" for every supported kind, for error messages and `meshctl` help."""
    return [f"{spec.api_version} {spec.kind}" for spec in KINDS.values()]

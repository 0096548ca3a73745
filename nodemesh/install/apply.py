"""Carry an install out against an API server: plan (pure) and execute (the only I/O).

`plan_apply` turns rendered objects into server-side apply requests (PATCH with
application/apply-patch+yaml, field manager "meshctl", force: meshctl owns these objects' fields,
so a re-install converges instead of failing on a conflict); `plan_delete` turns them into
DELETEs in reverse order. Both are data, so tests check them without an API server; `execute`
sends them with the official client's ApiClient, to which kubeconfig, context and in-cluster
credentials are the client's business.

The CA (Secret nodemesh-ca) and the public trust bundle (ConfigMap nodemesh-ca-root-cert) are
created only when absent, never replaced: replacing a root would invalidate every certificate in
the mesh. They are generated in this process's memory and sent straight to the API server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nodemesh.install import common

FIELD_MANAGER = "meshctl"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"

# kind -> (plural, namespaced) for every kind the install writes.
RESOURCES: dict[str, tuple[str, bool]] = {
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "Deployment": ("deployments", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True),
    "DaemonSet": ("daemonsets", True),
}


class InstallError(RuntimeError):
    """The API server refused a request; the message names the object and the status."""


@dataclass(frozen=True)
class Request:
    method: str  # PATCH (server-side apply), POST (create), GET, DELETE
    path: str
    describe: str  # "Deployment nodemesh-system/nodemesh-controller", for messages
    body: Any = None
    query: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"
    ok_statuses: tuple[int, ...] = field(default=(200, 201))


def object_path(doc: dict, *, collection: bool = False) -> str:
    kind = doc["kind"]
    if kind not in RESOURCES:
        raise InstallError(f"{kind}: the installer does not know this kind's resource path")
    plural, namespaced = RESOURCES[kind]
    version = doc["apiVersion"]
    base = f"/api/{version}" if "/" not in version else f"/apis/{version}"
    meta = doc["metadata"]
    if namespaced:
        base += f"/namespaces/{meta['namespace']}"
    base += f"/{plural}"
    return base if collection else f"{base}/{meta['name']}"


def describe(doc: dict) -> str:
    meta = doc["metadata"]
    where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    return f"{doc['kind']} {where}"


def plan_apply(docs: Iterable[dict]) -> list[Request]:
    query = (("fieldManager", FIELD_MANAGER), ("force", "true"))
    return [
        Request("PATCH", object_path(doc), describe(doc), doc, query, APPLY_CONTENT_TYPE)
        for doc in docs
    ]


def plan_delete(docs: Iterable[dict]) -> list[Request]:
    """Reverse order; 404 is success (already gone). Foreground: dependents go first."""
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
    return [
        Request("DELETE", object_path(doc), describe(doc), body, ok_statuses=(200, 202, 404))
        for doc in reversed(list(docs))
    ]


# ---- the CA: created once --------------------------------------------------------------------


@dataclass(frozen=True)
class CaMaterial:
    root_cert_pem: str
    root_key_pem: str
    trust_bundle_pem: str


def new_ca(trust_domain: str) -> CaMaterial:
    """A fresh self-managed root, as controller.ca would make it on first start."""
    from cryptography.hazmat.primitives import serialization

    from controller.ca_signer import pem
    from controller.ca_x509 import new_root_signer

    signer = new_root_signer(trust_domain, datetime.now(UTC), previous_roots=())
    key = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    bundle = b"".join(pem(root) for root in signer.roots)
    return CaMaterial(pem(signer.cert).decode(), key.decode(), bundle.decode())


def ca_secret(namespace: str, labels: dict[str, str], ca: CaMaterial) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": common.CA_SECRET, "namespace": namespace, "labels": labels},
        "type": "Opaque",
        "stringData": {
            "root-cert.pem": ca.root_cert_pem,
            "root-key.pem": ca.root_key_pem,
            common.CA_BUNDLE_FILE: ca.trust_bundle_pem,
        },
    }


def trust_bundle_configmap(namespace: str, labels: dict[str, str], bundle_pem: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": common.TRUST_BUNDLE, "namespace": namespace, "labels": labels},
        "data": {common.TRUST_BUNDLE_KEY: bundle_pem},
    }


def plan_ca(
    namespace: str,
    labels: dict[str, str],
    secret_exists: bool,
    bundle_exists: bool,
    existing_bundle_pem: str | None,
    make_ca: Callable[[], CaMaterial],
) -> list[Request]:
    """Create what is missing. A present Secret is kept and its trust bundle published."""
    out: list[Request] = []
    bundle = existing_bundle_pem
    if not secret_exists:
        ca = make_ca()
        secret = ca_secret(namespace, labels, ca)
        out.append(_create(secret))
        bundle = ca.trust_bundle_pem
    if not bundle_exists:
        if bundle is None:
            raise InstallError(
                f"Secret {namespace}/{common.CA_SECRET} has no {common.CA_BUNDLE_FILE}; add it "
                f"(the roots to trust, PEM) or delete the Secret to have a new CA made"
            )
        out.append(_create(trust_bundle_configmap(namespace, labels, bundle)))
    return out


def _create(doc: dict) -> Request:
    return Request("POST", object_path(doc, collection=True), describe(doc), doc)


# ---- I/O -----------------------------------------------------------------------------------------


def execute(api: Any, requests: Iterable[Request], log: Callable[[str], None]) -> None:
    """Send each request with a kubernetes.client.ApiClient; stop at the first refusal."""
    for request in requests:
        status, _ = send(api, request)
        verb = {"PATCH": "applied", "POST": "created", "DELETE": "deleted"}[request.method]
        log(f"{request.describe}: {'not found' if status == 404 else verb}")


def send(api: Any, request: Request) -> tuple[int, Any]:
    from kubernetes.client.exceptions import ApiException

    method, url, headers, body, _ = api.param_serialize(
        request.method,
        request.path,
        query_params=list(request.query),
        header_params={"Content-Type": request.content_type, "Accept": "application/json"},
        body=request.body,
        auth_settings=["BearerToken"],
    )
    try:
        response = api.call_api(method, url, header_params=headers, body=body)
        status, payload = response.status, response.read()
    except ApiException as error:
        status, payload = error.status, error.body
    if status not in request.ok_statuses:
        raise InstallError(
            f"{request.describe}: {request.method} failed: {_reason(status, payload)}"
        )
    return status, _json(payload)


def get(api: Any, doc_kind: str, namespace: str, name: str) -> dict | None:
    """An object, or None when the API server answers 404."""
    probe = {
        "apiVersion": "v1",
        "kind": doc_kind,
        "metadata": {"name": name, "namespace": namespace},
    }
    status, body = send(
        api, Request("GET", object_path(probe), describe(probe), ok_statuses=(200, 404))
    )
    return None if status == 404 else body


def _json(payload: Any) -> Any:
    if isinstance(payload, bytes | str) and payload:
        try:
            return json.loads(payload)
        except ValueError:
            return payload
    return payload


def _reason(status: int, payload: Any) -> str:
    body = _json(payload)
    message = body.get("message") if isinstance(body, dict) else body
    hint = {
        401: "; check the kubeconfig's credentials",
        403: "; the install needs cluster-admin (it creates CRDs and ClusterRoles)",
    }.get(status, "")
    return f"HTTP {status}: {message}{hint}"

"""The CustomResourceDefinitions of nodemesh's own kinds (apiextensions.k8s.io/v1).

Each CRD serves one version, `v1`, with the status subresource (the controller reports whether it
accepted a policy without bumping `generation`), printer columns for `kubectl get`, the category
`nodemesh` (`kubectl get nodemesh -A` lists every nodemesh object) and short names prefixed
`nm` so they never shadow Istio's `ap`/`pa` when both meshes' CRDs are installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from nodemesh.install import crd_security, crd_traffic
from nodemesh.install import openapi as o

CATEGORY = "nodemesh"
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_ACCEPTED = {
    "name": "Accepted",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Accepted")].status',
}


@dataclass(frozen=True)
class CrdSpec:
    group: str
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec_schema: o.Schema
    columns: tuple[dict, ...]
    spec_required: bool  # TrafficPolicy needs a spec; an empty AuthorizationPolicy is valid

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1"


def crd_specs() -> list[CrdSpec]:
    return [
        CrdSpec(
            "security.nodemesh.io",
            "AuthorizationPolicy",
            "authorizationpolicies",
            ("nmauthz",),
            crd_security.authorization_policy_spec(),
            ({"name": "Action", "type": "string", "jsonPath": ".spec.action"}, _ACCEPTED, _AGE),
            spec_required=False,
        ),
        CrdSpec(
            "security.nodemesh.io",
            "PeerAuthentication",
            "peerauthentications",
            ("nmpa",),
            crd_security.peer_authentication_spec(),
            ({"name": "Mode", "type": "string", "jsonPath": ".spec.mtls.mode"}, _ACCEPTED, _AGE),
            spec_required=False,
        ),
        CrdSpec(
            "networking.nodemesh.io",
            "TrafficPolicy",
            "trafficpolicies",
            ("nmtp",),
            crd_traffic.traffic_policy_spec(),
            (
                {"name": "Target", "type": "string", "jsonPath": ".spec.targetRefs[*].name"},
                _ACCEPTED,
                _AGE,
            ),
            spec_required=True,
        ),
    ]


def crd(spec: CrdSpec, labels: dict[str, str]) -> dict:
    root = o.obj(
        {
            "apiVersion": o.string(),
            "kind": o.string(),
            "metadata": {"type": "object"},
            "spec": spec.spec_schema,
            "status": o.status(),
        },
        required=("spec",) if spec.spec_required else (),
    )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{spec.plural}.{spec.group}", "labels": labels},
        "spec": {
            "group": spec.group,
            "scope": "Namespaced",
            "names": {
                "kind": spec.kind,
                "listKind": f"{spec.kind}List",
                "plural": spec.plural,
                "singular": spec.kind.lower(),
                "shortNames": list(spec.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(spec.columns),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crds(labels: dict[str, str]) -> list[dict]:
    return [crd(spec, labels) for spec in crd_specs()]


def schema_of(api_version: str, kind: str) -> o.Schema | None:
    """The openAPIV3Schema objects of `apiVersion`/`kind` must satisfy (None: not our kind)."""
    for spec in crd_specs():
        if (spec.api_version, spec.kind) == (api_version, kind):
            return crd(spec, {})["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return None

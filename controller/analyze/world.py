"""The one view every check reads: the objects, their mesh model, and what would run. Pure.

Built once per analysis from plain objects (files, the local store and the runtime's pods, or
both), so checks are functions of data with no I/O and no parsing of their own:

- `translated` is the controller's own model (controller.translate): policies, routes, Services
  and waypoints exactly as agents and waypoints would receive them, so a finding never disagrees
  with what the mesh does.
- `templates` are the workloads selectors are matched against. The model only holds running pods,
  which a set of files has none of, so a Deployment's pod template and a Pod's spec count too:
  "this policy selects nothing" must mean nothing now or once the files are applied.
- `nodes` are the cluster's nodes (None when only files are analyzed: files say nothing about
  nodes, so node checks are skipped).

Namespace labels decide enrollment. A namespace whose Namespace object is not among the inputs
(files that do not define it) is *unknown*, and checks that depend on its labels stay silent about
it rather than guess; in cluster mode the built-in namespaces are known, with no labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.analyze.findings import Finding
from controller.model import (
    DATAPLANE_MODE_AMBIENT,
    DATAPLANE_MODE_LABEL,
    DEFAULT_ROOT_NAMESPACE,
    Labels,
    Service,
    freeze_labels,
    selector_matches,
)
from controller.model_waypoint import GATEWAY_NAME_LABEL
from controller.translate import TranslateResult, is_enrolled, translate, waypoint_for
from nodemesh.manifests.validate_gateway import is_waypoint_gateway

BUILTIN_NAMESPACES = ("default", "nodemesh-system")
ObjectKey = tuple[str, str, str]  # (kind, namespace or "", name)


def object_key(obj: dict) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name")))


@dataclass(frozen=True)
class Template:
    """A pod, or a Deployment's pod template: what a selector can pick."""

    kind: str  # "Pod" or "Deployment"
    namespace: str
    name: str
    labels: Labels  # the pod's (or the template's) labels
    containers: tuple[dict, ...]  # spec.containers, for named ports
    node: str  # spec.nodeName, "" when not (yet) scheduled
    running: bool  # a pod the runtime runs: it has an address and has not finished


@dataclass(frozen=True)
class World:
    objects: tuple[dict, ...]
    translated: TranslateResult
    templates: tuple[Template, ...]
    namespaces: Mapping[str, dict[str, str]]  # known namespace -> its labels
    nodes: tuple[str, ...] | None  # None: files only, nothing is known about nodes
    root_namespace: str = DEFAULT_ROOT_NAMESPACE
    origins: Mapping[ObjectKey, str] = field(default_factory=dict)  # key -> "file:doc"

    @classmethod
    def build(
        cls,
        objects: Iterable[dict],
        *,
        nodes: Iterable[str] | None = None,
        origins: Mapping[ObjectKey, str] | None = None,
        root_namespace: str = DEFAULT_ROOT_NAMESPACE,
    ) -> World:
        objects = tuple(objects)
        namespaces = {name: {} for name in BUILTIN_NAMESPACES} if nodes is not None else {}
        for obj in objects:
            if obj.get("kind") == "Namespace":
                namespaces[obj["metadata"]["name"]] = dict(obj["metadata"].get("labels") or {})
        return cls(
            objects=objects,
            translated=translate(objects, root_namespace=root_namespace),
            templates=_unique(_templates(objects)),
            namespaces=namespaces,
            nodes=None if nodes is None else tuple(nodes),
            root_namespace=root_namespace,
            origins=dict(origins or {}),
        )

    # --- lookups --------------------------------------------------------------------------------

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj.get("kind") == kind]

    def service(self, namespace: str, name: str) -> Service | None:
        return self.translated.snapshot.service(namespace, name)

    def enrolled_namespace(self, namespace: str) -> bool | None:
        """True/False from the namespace's labels; None when its Namespace is not known."""
        labels = self.namespaces.get(namespace)
        if labels is None:
            return None
        return labels.get(DATAPLANE_MODE_LABEL) == DATAPLANE_MODE_AMBIENT

    def enrolled(self, template: Template) -> bool | None:
        labels = self.namespaces.get(template.namespace)
        if labels is None:
            return None
        return is_enrolled(labels, dict(template.labels))

    def waypoint_of(self, template: Template) -> str:
        """The waypoint the pod's inbound traffic goes through ("" none), as translate decides."""
        return waypoint_for(dict(template.labels), self.namespaces.get(template.namespace, {}))

    def has_waypoint_gateway(self, namespace: str, name: str) -> bool:
        return any(
            is_waypoint_gateway(obj) and object_key(obj)[1:] == (namespace, name)
            for obj in self.of_kind("Gateway")
        )

    def selected(self, namespace: str, selector: Labels | None, *, root: bool) -> list[Template]:
        """Workloads a policy selector picks: its namespace (every one for the root namespace)."""
        return [
            t
            for t in self.templates
            if (root or t.namespace == namespace) and selector_matches(selector, t.labels)
        ]

    def finding(self, code: str, key: ObjectKey, message: str) -> Finding:
        kind, namespace, name = key
        return Finding(code, kind, namespace, name, message, self.origins.get(key, ""))


def _unique(templates: Iterable[Template]) -> tuple[Template, ...]:
    """One per object: in cluster mode a stored Pod and the runtime's running copy share a name,
    and the running one (it has a node) wins."""
    found: dict[tuple[str, str, str], Template] = {}
    for template in templates:
        key = (template.kind, template.namespace, template.name)
        if key not in found or template.running:
            found[key] = template
    return tuple(found.values())


def _templates(objects: tuple[dict, ...]) -> Iterable[Template]:
    for obj in objects:
        kind, namespace, name = object_key(obj)
        if kind == "Pod":
            spec, meta = obj.get("spec") or {}, obj["metadata"]
        elif kind == "Deployment":
            template = (obj.get("spec") or {}).get("template") or {}
            spec, meta = template.get("spec") or {}, template.get("metadata") or {}
        else:
            continue
        labels = freeze_labels(meta.get("labels"))
        if spec.get("hostNetwork") or GATEWAY_NAME_LABEL in dict(labels):
            continue  # not capturable, or a waypoint's own pod: no policy or Service concerns
        status = obj.get("status") or {}
        yield Template(
            kind=kind,
            namespace=namespace or "default",
            name=name,
            labels=labels,
            containers=tuple(spec.get("containers") or ()),
            node=spec.get("nodeName") or "",
            running=bool(status.get("podIP"))
            and status.get("phase") not in ("Succeeded", "Failed"),
        )

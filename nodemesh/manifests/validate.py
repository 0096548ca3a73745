"""One parsed document -> validated, normalized `Manifest`s, or `ManifestError`s saying why not.

The steps, in order: the document must be an object; a `kind: List` is expanded into its items; each
object needs apiVersion, kind and metadata.name; (apiVersion, kind) must be in kinds.KINDS; then
metadata and the kind's own validator report every problem they find. Only an object with no problem
is deep-copied and normalized, so normalizers may assume a valid shape.
"""

from __future__ import annotations

import copy
import difflib
from typing import Any

from nodemesh.manifests import kinds
from nodemesh.manifests.check import Check, child, describe, item
from nodemesh.manifests.errors import ManifestError
from nodemesh.manifests.model import Manifest
from nodemesh.manifests.validate_meta import metadata_of, normalize_metadata, validate_metadata

LIST_FIELDS = frozenset({"apiVersion", "kind", "items"})
IGNORED_LIST_FIELDS = frozenset({"metadata"})
# Istio kinds users reach for out of habit, and where their settings live in nodemesh instead.
ISTIO_KIND_HINTS = {
    "VirtualService": (
        "routing, timeouts and retries are a Gateway API HTTPRoute in nodemesh; fault injection "
        "is a TrafficPolicy (networking.nodemesh.io/v1)"
    ),
    "DestinationRule": (
        "connection pool limits and outlier detection are a TrafficPolicy "
        "(networking.nodemesh.io/v1) in nodemesh"
    ),
}


def validate_document(
    doc: object, source: str, index: int
) -> tuple[list[Manifest], list[ManifestError]]:
    """Validate document number `index` of `source`; empty documents (None) yield nothing."""
    if doc is None:
        return [], []
    if isinstance(doc, dict) and doc.get("kind") == "List":
        return _validate_list(doc, source, index)
    manifest, errors = validate_object(doc, source, index, None)
    return ([manifest] if manifest else []), errors


def _validate_list(
    doc: dict[str, Any], source: str, index: int
) -> tuple[list[Manifest], list[ManifestError]]:
    """Expand `kind: List`: items keep the List's document number; paths say items[i]."""
    errors: list[ManifestError] = []
    unknown = sorted(str(key) for key in doc if key not in LIST_FIELDS | IGNORED_LIST_FIELDS)
    for key in unknown:
        errors.append(ManifestError(source, index, "List", None, key, "unknown field in a List"))
    if doc.get("apiVersion") != "v1":
        message = f"must be v1 for a List, got {describe(doc.get('apiVersion'))}"
        errors.append(ManifestError(source, index, "List", None, "apiVersion", message))
    items = doc.get("items")
    if not isinstance(items, list):
        message = f"must be a list of objects, got {describe(items)}"
        errors.append(ManifestError(source, index, "List", None, "items", message))
        return [], errors
    manifests: list[Manifest] = []
    for position, entry in enumerate(items):
        if isinstance(entry, dict) and entry.get("kind") == "List":
            message = "a List may not contain another List"
            errors.append(
                ManifestError(source, index, "List", None, item("items", position), message)
            )
            continue
        manifest, item_errors = validate_object(entry, source, index, position)
        manifests.extend([manifest] if manifest else [])
        errors.extend(item_errors)
    return manifests, errors


def validate_object(
    obj: object, source: str, index: int, position: int | None
) -> tuple[Manifest | None, list[ManifestError]]:
    """Validate one object (a document, or item `position` of a List document)."""
    prefix = "" if position is None else item("items", position)
    if not isinstance(obj, dict):
        message = f"must be an object with apiVersion, kind and metadata, got {describe(obj)}"
        return None, [ManifestError(source, index, None, None, prefix or None, message)]
    kind_name = obj.get("kind") if isinstance(obj.get("kind"), str) else None
    check = Check(kinds.FIELD_TABLES)
    spec = _lookup_kind(obj, prefix, check)
    if spec is None:
        metadata_of(obj, prefix, check)
    else:
        validate_metadata(
            obj,
            prefix,
            check,
            namespaced=spec.namespaced,
            kind=spec.kind,
            name_rule=spec.name_rule,
        )
        spec.validate(obj, prefix, check)
    name = _display_name(obj, spec.namespaced if spec else True)
    if check.problems:
        errors = [
            ManifestError(source, index, kind_name, name, problem.field, problem.message)
            for problem in check.problems
        ]
        return None, errors
    assert spec is not None  # no problems means the kind was found
    normalized = copy.deepcopy(obj)
    normalize_metadata(normalized, namespaced=spec.namespaced)
    spec.normalize(normalized)
    return Manifest(source, index, normalized, position), []


def _lookup_kind(obj: dict[str, Any], prefix: str, check: Check) -> kinds.KindSpec | None:
    """Find the KindSpec for obj's apiVersion and kind, reporting why when there is none."""
    api_version = check.string(obj, "apiVersion", prefix, required=True)
    kind = check.string(obj, "kind", prefix, required=True)
    if kind is None:
        return None
    served = kinds.api_versions_of(kind)
    if not served:
        check.fail(child(prefix, "kind"), _unknown_kind(kind))
        return None
    if api_version is None:
        return None
    spec = kinds.lookup(api_version, kind)
    if spec is None:
        check.fail(child(prefix, "apiVersion"), _wrong_api_version(kind, api_version, served))
    return spec


def _unknown_kind(kind: str) -> str:
    known = sorted({spec.kind for spec in kinds.KINDS.values()})
    # A high cutoff: "Servce" is a typo of Service, "VirtualService" is another kind altogether.
    close = difflib.get_close_matches(kind, known, n=1, cutoff=0.8)
    hint = f"did you mean {close[0]!r}? " if close else ""
    if kind in ISTIO_KIND_HINTS:
        hint = f"{ISTIO_KIND_HINTS[kind]}; "
    return f"unknown kind {kind!r}; {hint}supported kinds: {', '.join(kinds.supported_kinds())}"


def _wrong_api_version(kind: str, api_version: str, served: list[str]) -> str:
    expected = " or ".join(served)
    message = f"{kind} is served as {expected} by nodemesh, not {api_version!r}"
    if api_version.startswith("security.istio.io/"):
        message += "; the spec is the same as Istio's, only the apiVersion changes"
    return message


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _display_name(obj: dict[str, Any], namespaced: bool) -> str | None:
    """ "ns/name" (namespace defaulted) or "name" for error headers, if the name is a string."""
    meta = _metadata(obj)
    name = meta.get("name")
    if not isinstance(name, str):
        return None
    namespace = meta.get("namespace")
    if not namespaced:
        return name
    return f"{namespace if isinstance(namespace, str) and namespace else 'default'}/{name}"

"""`metadata` and label selectors, shared by every kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child

OBJECT_META_FIELDS = frozenset({"name", "namespace", "labels", "annotations"})
LABEL_SELECTOR_FIELDS = frozenset({"matchLabels"})

# Kubernetes caps the total size of an object's annotations (keys + values) at 256 KiB.
_ANNOTATIONS_MAX_BYTES = 256 * 1024

USED_FIELDS = {
    "ObjectMeta": OBJECT_META_FIELDS,
    "LabelSelector": LABEL_SELECTOR_FIELDS,
    "WorkloadSelector": LABEL_SELECTOR_FIELDS,
}


def validate_metadata(
    obj: dict[str, Any],
    path: str,
    check: Check,
    *,
    namespaced: bool,
    kind: str,
    name_rule: Callable[[str], str | None],
) -> None:
    """Check `metadata` of a top-level object; name syntax depends on the kind (`name_rule`)."""
    meta = metadata_of(obj, path, check, name_rule=name_rule)
    if meta is None:
        return
    meta_path = child(path, "metadata")
    check.fields(meta, meta_path, "ObjectMeta", OBJECT_META_FIELDS)
    namespace = check.string(meta, "namespace", meta_path, rule=_namespace_rule)
    if namespace and not namespaced:
        check.fail(
            child(meta_path, "namespace"),
            f"{kind} is cluster-scoped and takes no namespace; remove metadata.namespace",
        )
    validate_labels_and_annotations(meta, meta_path, check)


def metadata_of(
    obj: dict[str, Any],
    path: str,
    check: Check,
    *,
    name_rule: Callable[[str], str | None] | None = None,
) -> dict[str, Any] | None:
    """`metadata`, name checked; when metadata is missing, metadata.name is reported missing."""
    meta_path = child(path, "metadata")
    if obj.get("metadata") is None:
        check.fail(child(meta_path, "name"), "required field is missing")
        return None
    meta = check.mapping(obj, "metadata", path)
    if meta is not None:
        check.string(meta, "name", meta_path, required=True, rule=name_rule)
    return meta


def _namespace_rule(value: str) -> str | None:
    """An empty namespace means "default", as with kubectl."""
    return names.dns1123_label(value) if value else None


def validate_template_metadata(meta: dict[str, Any], path: str, check: Check) -> None:
    """Check a pod template's `metadata`: only labels and annotations matter."""
    # A template's name and namespace are legal but unused: pods get generated names.
    check.fields(meta, path, "ObjectMeta", OBJECT_META_FIELDS)
    validate_labels_and_annotations(meta, path, check)


def validate_labels_and_annotations(meta: dict[str, Any], path: str, check: Check) -> None:
    check.string_map(meta, "labels", path, key_rule=names.label_key, value_rule=names.label_value)
    annotations = check.string_map(meta, "annotations", path, key_rule=names.label_key)
    if annotations:
        size = sum(len(str(key)) + len(str(value)) for key, value in annotations.items())
        if size > _ANNOTATIONS_MAX_BYTES:
            check.fail(child(path, "annotations"), f"must total at most 256 KiB, got {size} bytes")


def validate_label_selector(
    obj: dict[str, Any],
    key: str,
    path: str,
    check: Check,
    *,
    required: bool = False,
    type_name: str = "LabelSelector",
) -> dict[str, str] | None:
    """A `{matchLabels: {...}}` selector: Kubernetes' LabelSelector or Istio's WorkloadSelector."""
    selector = check.mapping(obj, key, path, required=required)
    if selector is None:
        return None
    selector_path = child(path, key)
    check.fields(selector, selector_path, type_name, LABEL_SELECTOR_FIELDS)
    return match_labels(selector, selector_path, check, required=required)


def match_labels(
    selector: dict[str, Any], path: str, check: Check, *, required: bool
) -> dict[str, str] | None:
    # matchExpressions is refused on its own; don't also ask for the matchLabels it stood in for.
    required = required and not selector.get("matchExpressions")
    labels = check.mapping(selector, "matchLabels", path, required=required)
    if labels is None:
        return None
    if required and not labels:
        check.fail(child(path, "matchLabels"), "must not be empty")
    return check.string_map(
        selector, "matchLabels", path, key_rule=names.label_key, value_rule=names.label_value
    )


def normalize_metadata(obj: dict[str, Any], *, namespaced: bool) -> None:
    """Fill metadata defaults: namespace "default" for namespaced kinds, empty labels."""
    meta = obj["metadata"]
    if namespaced:
        meta["namespace"] = meta.get("namespace") or "default"
    else:
        meta.pop("namespace", None)
    if meta.get("labels") is None:
        meta["labels"] = {}

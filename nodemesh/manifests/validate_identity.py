"""v1 Namespace and v1 ServiceAccount: together they make a workload's mesh identity.

Neither has anything local mode reads beyond metadata; their other Kubernetes fields (a Namespace's
finalizers, a ServiceAccount's secrets) are accepted and ignored.
"""

from __future__ import annotations

from typing import Any

from nodemesh.manifests.check import Check

NAMESPACE_FIELDS = frozenset({"apiVersion", "kind", "metadata"})
SERVICE_ACCOUNT_FIELDS = frozenset({"apiVersion", "kind", "metadata"})

USED_FIELDS = {"Namespace": NAMESPACE_FIELDS, "ServiceAccount": SERVICE_ACCOUNT_FIELDS}


def validate_namespace(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "Namespace", NAMESPACE_FIELDS)


def validate_service_account(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "ServiceAccount", SERVICE_ACCOUNT_FIELDS)


def normalize_nothing(obj: dict[str, Any]) -> None:
    """Kinds whose only defaults are metadata's (filled for every kind by the caller)."""

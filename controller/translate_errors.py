"""Errors of `controller.translate`, and the cross-object rules that produce most of them.

A registry may hold objects that are each valid but cannot all be true at once: two Services
with one name (a stale cache, two clusters' objects in one store), two pods with one uid, two
Services claiming one cluster IP. The first one (in the order given) keeps the key and every
later one becomes a `TranslateError` and is left out, so the model stays consistent and the
operator is told which object to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.model import Service


@dataclass(frozen=True)
class TranslateError:
    """One object left out of the model (or of part of it, as a TrafficPolicy losing a Service),
    and why."""

    kind: str  # the object's kind ("" if it has none)
    namespace: str  # its namespace ("" for cluster-scoped or unknown)
    name: str  # its name ("" if it has none)
    message: str  # what is wrong, written for the operator

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}: {self.message}"


def unique_by(items, key, describe, reason: str, errors: list[TranslateError]) -> list:
    """The first item of each key; every later one is reported and left out."""
    kept: dict[Any, Any] = {}
    for item in items:
        if key(item) in kept:
            errors.append(TranslateError(*describe(item), reason))
        else:
            kept[key(item)] = item
    return list(kept.values())


def unique_keys(items: list, kind: str, errors: list[TranslateError]) -> list:
    return unique_by(
        items,
        lambda obj: obj.key,
        lambda obj: (kind, obj.namespace, obj.name),
        f"another {kind} has the same namespace and name",
        errors,
    )


def unique_vips(services: list[Service], errors: list[TranslateError]) -> list[Service]:
    """A cluster IP belongs to one Service: the first by (namespace, name) keeps it."""
    owners: dict[str, str] = {}
    kept = []
    for service in sorted(services, key=lambda s: (s.namespace, s.name)):
        taken = [vip for vip in service.vips if vip in owners]
        if taken:
            message = f"cluster IP {taken[0]} is already Service {owners[taken[0]]}'s"
            errors.append(TranslateError("Service", service.namespace, service.name, message))
            continue
        owners.update(dict.fromkeys(service.vips, service.key))
        kept.append(service)
    return kept

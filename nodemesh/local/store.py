"""The local cluster's object store: what users applied, as the API server would keep it.

`meshctl apply` and `delete` validate every document first (nodemesh.manifests), then change the
store in one transaction under a lock: either every object of the apply lands or none does. The
store assigns what an API server assigns (uid, creation time, a per-object generation, Service
cluster IPs) and bumps a store-wide generation that the runtime daemon reports back as
`observedGeneration` once it has acted on it.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from nodemesh.local.addressing import AddressingError, allocate_vip
from nodemesh.local.state import StateDir, read_json, write_json_atomic
from nodemesh.manifests.errors import ManifestError, ManifestErrors
from nodemesh.manifests.model import Manifest

BUILTIN_NAMESPACES = ("default", "nodemesh-system")


def object_key(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace or ''}/{name}"


@dataclass(frozen=True)
class Change:
    """One line of apply/delete output: `service/web created`."""

    kind: str
    namespace: str | None
    name: str
    action: str  # created | configured | unchanged | deleted | not found

    def __str__(self) -> str:
        where = f" -n {self.namespace}" if self.namespace else ""
        return f"{self.kind.lower()}/{self.name} {self.action}{where}"


class Store:
    """Read and change one cluster's store file."""

    def __init__(self, state: StateDir) -> None:
        self.state = state

    def _load(self) -> dict:
        data = read_json(self.state.store_file, None)
        return data if isinstance(data, dict) else {"generation": 0, "objects": {}}

    def generation(self) -> int:
        return int(self._load()["generation"])

    def objects(self) -> list[dict]:
        """Every stored object, materialized with its server-assigned fields."""
        return [_materialize(rec) for rec in self._load()["objects"].values()]

    def snapshot(self) -> tuple[int, list[dict]]:
        data = self._load()
        return int(data["generation"]), [_materialize(r) for r in data["objects"].values()]

    def apply(self, manifests: Iterable[Manifest]) -> list[Change]:
        manifests = list(manifests)
        with self.state.locked():
            data = self._load()
            records = copy.deepcopy(data["objects"])
            changes, errors = [], []
            for m in manifests:
                try:
                    changes.append(_apply_one(records, m))
                except ManifestError as err:
                    errors.append(err)
            if errors:
                raise ManifestErrors(errors)
            if any(c.action != "unchanged" for c in changes):
                self._save(data, records)
            return changes

    def delete(self, manifests: Iterable[Manifest]) -> list[Change]:
        with self.state.locked():
            data = self._load()
            records = copy.deepcopy(data["objects"])
            changes = []
            for m in manifests:
                key = object_key(m.kind, m.namespace, m.name)
                if records.pop(key, None) is None:
                    changes.append(Change(m.kind, m.namespace, m.name, "not found"))
                    continue
                changes.append(Change(m.kind, m.namespace, m.name, "deleted"))
                if m.kind == "Namespace":
                    _cascade_namespace(records, m.name)
            if any(c.action == "deleted" for c in changes):
                self._save(data, records)
            return changes

    def _save(self, data: dict, records: dict) -> None:
        write_json_atomic(
            self.state.store_file,
            {"generation": int(data["generation"]) + 1, "objects": records},
        )


def _materialize(rec: dict) -> dict:
    obj = copy.deepcopy(rec["applied"])
    meta = obj.setdefault("metadata", {})
    meta["uid"] = rec["uid"]
    meta["creationTimestamp"] = rec["created"]
    meta["generation"] = rec["generation"]
    if rec.get("clusterIP"):
        obj["spec"]["clusterIP"] = rec["clusterIP"]
    return obj


def _cascade_namespace(records: dict, namespace: str) -> None:
    for key in [k for k in records if k.split("/")[1] == namespace]:
        del records[key]


def _error(m: Manifest, field: str | None, message: str) -> ManifestError:
    name = f"{m.namespace}/{m.name}" if m.namespace else m.name
    return ManifestError(
        source=m.source, index=m.index, kind=m.kind, name=name, field=field, message=message
    )


def _namespace_exists(records: dict, namespace: str) -> bool:
    return namespace in BUILTIN_NAMESPACES or object_key("Namespace", None, namespace) in records


def _apply_one(records: dict, m: Manifest) -> Change:
    if m.namespace and not _namespace_exists(records, m.namespace):
        raise _error(
            m,
            "metadata.namespace",
            f"namespace {m.namespace!r} not found; apply it first "
            "(or put its Namespace document before this one)",
        )
    key = object_key(m.kind, m.namespace, m.name)
    old = records.get(key)
    applied = json.loads(json.dumps(m.obj))  # as stored: JSON object keys are strings
    if old is not None and old["applied"] == applied:
        return Change(m.kind, m.namespace, m.name, "unchanged")
    rec = {
        "applied": applied,
        "uid": old["uid"] if old else str(uuid.uuid4()),
        "created": old["created"] if old else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "generation": (old["generation"] + 1) if old else 1,
    }
    if m.kind == "Service":
        rec["clusterIP"] = _service_ip(records, m, old)
    records[key] = rec
    return Change(m.kind, m.namespace, m.name, "configured" if old else "created")


def _service_ip(records: dict, m: Manifest, old: dict | None) -> str | None:
    """Allocate the Service's VIP once; like the API server, never change it on re-apply."""
    requested = (m.obj.get("spec") or {}).get("clusterIP") or None
    if old is not None:
        current = old.get("clusterIP") or "None"
        if requested and requested != current:
            raise _error(
                m,
                "spec.clusterIP",
                f"field is immutable: it is {current}, the manifest asks for {requested}; "
                "delete the Service to change it",
            )
        return old.get("clusterIP")
    if requested == "None":
        return None
    used = {r["clusterIP"] for r in records.values() if r.get("clusterIP")}
    try:
        return allocate_vip(used, requested)
    except AddressingError as exc:
        raise _error(m, "spec.clusterIP", str(exc)) from exc

"""`Manifest`: one validated, normalized Kubernetes-style object and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Manifest:
    """A validated object with its defaults filled in.

    `obj` is a private deep copy of the document with every default nodemesh relies on written out
    (namespace, protocols, targetPort, restartPolicy, replicas, probe timings, serviceAccountName,
    ...), so code downstream reads values instead of re-deriving Kubernetes defaults. Treat it as
    read-only.

    `source` and `index` locate the object for error messages (`index` is the 1-based document
    number in `source`); `item` is the position inside a `kind: List` document's `items`, else None.
    """

    source: str
    index: int
    obj: dict[str, Any]
    item: int | None = None

    @property
    def api_version(self) -> str:
        return self.obj["apiVersion"]

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def namespace(self) -> str | None:
        """None for cluster-scoped kinds; normalization fills "default" for the others."""
        return self.obj["metadata"].get("namespace")

    @property
    def labels(self) -> dict[str, str]:
        return self.obj["metadata"]["labels"]

    @property
    def key(self) -> tuple[str, str, str]:
        """(kind, namespace or "", name): what makes two objects the same object in one cluster."""
        return (self.kind, self.namespace or "", self.name)

    @property
    def display_name(self) -> str:
        """ "namespace/name", or "name" for cluster-scoped kinds, as error messages show objects."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def field_prefix(self) -> str:
        """Path of this object inside its document: "" or "items[3]" for a List item."""
        return "" if self.item is None else f"items[{self.item}]"

"""Where analysis gets its objects: manifest files, the local cluster, or both. The I/O edge.

Files go through nodemesh.manifests, exactly as `meshctl apply` reads them, so a document that
would not apply is reported with the validator's own message, as finding NM0001, instead of a
second, different opinion. The rest of the files are still analyzed: every file that loads
cleanly contributes its objects (a file with a bad document contributes none, as `apply` would
apply none of it).

The local cluster contributes what the controller itself reads (controller.registry_local): the
store's objects plus the runtime's published pods, and the nodes of the cluster's plan. When both
are given, a file's object replaces the cluster's object of the same kind, namespace and name
(istioctl analyze's rule: "what if I applied these files?").
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from controller.analyze.findings import Finding
from controller.analyze.world import ObjectKey, World, object_key
from nodemesh.local import cluster
from nodemesh.local.state import StateDir
from nodemesh.local.store import Store
from nodemesh.manifests.errors import ManifestError, ManifestErrors
from nodemesh.manifests.load import MANIFEST_SUFFIXES, STDIN, load_paths
from nodemesh.manifests.model import Manifest


@dataclass
class Inputs:
    """Objects to analyze and what reading them found; `world()` builds the analysis view."""

    objects: list[dict] = field(default_factory=list)
    origins: dict[ObjectKey, str] = field(default_factory=dict)
    nodes: tuple[str, ...] | None = None  # set only when the cluster was read
    findings: list[Finding] = field(default_factory=list)  # NM0001: documents that do not load

    def world(self) -> World:
        return World.build(self.objects, nodes=self.nodes, origins=self.origins)


def gather(paths: Iterable[str], state: StateDir | None, *, stdin: TextIO | None = None) -> Inputs:
    """The objects of `paths` over those of the cluster `state` (None: files only).

    Raises ClusterError when `state` names no running cluster (the CLI prints what to do)."""
    inputs = Inputs()
    if state is not None:
        cluster_objects, nodes = read_cluster(state)
        inputs.objects, inputs.nodes = cluster_objects, nodes
    paths = list(paths)
    if paths:
        manifests, inputs.findings = read_files(paths, stdin or sys.stdin)
        inputs.objects = merge(inputs.objects, [m.obj for m in manifests])
        inputs.origins = {object_key(m.obj): f"{m.source} doc {m.index}" for m in manifests}
    return inputs


def read_cluster(state: StateDir) -> tuple[list[dict], tuple[str, ...]]:
    """The controller's view of the local cluster: stored objects, running pods, node names."""
    status = cluster.read_status(state)
    nodes = tuple(node["name"] for node in status.get("nodes") or [])
    return Store(state).objects() + list(status.get("pods") or []), nodes


def merge(base: list[dict], overrides: list[dict]) -> list[dict]:
    """`base` with every object that `overrides` also has replaced by the override."""
    replaced = {object_key(obj) for obj in overrides}
    return [obj for obj in base if object_key(obj) not in replaced] + list(overrides)


def read_files(paths: list[str], stdin: TextIO) -> tuple[list[Manifest], list[Finding]]:
    """Every manifest of the files that load, and one NM0001 finding per problem."""
    text = stdin.read() if STDIN in paths else ""
    try:
        return load_paths(paths, stdin=io.StringIO(text)), []
    except ManifestErrors as exc:
        findings = [invalid_manifest(error) for error in exc.errors]
    manifests: list[Manifest] = []
    for path in _files(paths):
        try:
            manifests += load_paths([path], stdin=io.StringIO(text))
        except ManifestErrors:
            continue  # reported above, with every other problem
    return manifests, findings


def _files(paths: list[str]) -> list[str]:
    """Each file `load_paths` would read, so one bad file does not hide the others' objects."""
    files: list[str] = []
    for path in paths:
        if path != STDIN and Path(path).is_dir():
            entries = sorted(Path(path).iterdir())
            files += [str(e) for e in entries if e.suffix in MANIFEST_SUFFIXES and e.is_file()]
        else:
            files.append(path)
    return files


def invalid_manifest(error: ManifestError) -> Finding:
    """A load or validation problem as finding NM0001, located as the validator located it."""
    namespace, _, name = (error.name or "").rpartition("/")
    origin = f"{error.source} doc {error.index}" if error.index else error.source
    message = f"{error.field}: {error.message}" if error.field else error.message
    return Finding(
        "NM0001",
        error.kind or "",
        namespace,
        name or (error.source if not error.kind else ""),
        f"{message} (the document is left out of the analysis; 'meshctl apply' would refuse it)",
        origin,
    )

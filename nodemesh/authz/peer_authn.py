"""PeerAuthentication: which mTLS mode applies to one workload port. Pure.

Istio's precedence, as istiod computes it for ztunnel: workload-selector policy > namespace
policy > root-namespace (mesh) policy > PERMISSIVE. UNSET inherits from the next level;
`portLevelMtls` of the selector policy overrides per destination port (UNSET there inherits too).
A selector policy in the root namespace is ignored, as istiod does. Istio breaks ties between two
policies of one level by creation time; the model carries none, so the first by name wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from controller.model import PeerAuthentication, Workload, selector_matches

PeerMode = tuple[str, str | None, str]  # (mode, deciding policy or None, where it set the mode)


@dataclass(frozen=True)
class PeerAuthnIndex:
    """The PeerAuthentications of one push, by level."""

    root_namespace: str
    mesh: PeerAuthentication | None  # root namespace, no selector
    by_namespace: Mapping[str, PeerAuthentication]  # namespace -> its no-selector policy
    selected: Mapping[str, tuple[PeerAuthentication, ...]]  # namespace -> selector policies

    @classmethod
    def build(
        cls,
        policies: Iterable[PeerAuthentication],
        root_namespace: str,
        is_root: Callable[[PeerAuthentication], bool],
    ) -> PeerAuthnIndex:
        mesh, namespaced, selected = None, {}, {}
        for pa in sorted(policies, key=lambda p: (p.namespace, p.name)):
            if pa.selector is None and is_root(pa):
                mesh = mesh or pa
            elif pa.selector is None:
                namespaced.setdefault(pa.namespace, pa)
            elif not is_root(pa):
                selected.setdefault(pa.namespace, []).append(pa)
        return cls(root_namespace, mesh, namespaced, {ns: tuple(ps) for ns, ps in selected.items()})

    def mode(self, workload: Workload, port: int) -> PeerMode:
        """(mode, deciding PeerAuthentication or None, where it set it) for one workload port."""
        mode, source, scope = "PERMISSIVE", None, "default"
        for level, pa in (
            ("mesh-wide", self.mesh),
            ("namespace-wide", self.by_namespace.get(workload.namespace)),
        ):
            if pa is not None and pa.mode != "UNSET":
                mode, source, scope = pa.mode, pa.key, level
        chosen = self._for_workload(workload)
        if chosen is not None:
            if chosen.mode != "UNSET":
                mode, source, scope = chosen.mode, chosen.key, "for the workload"
            port_mode = dict(chosen.port_level).get(port, "UNSET")
            if port_mode != "UNSET":
                mode, source, scope = port_mode, chosen.key, f"for port {port}"
        return mode, source, scope

    def _for_workload(self, workload: Workload) -> PeerAuthentication | None:
        if workload.namespace == self.root_namespace:
            return None  # istiod ignores selector policies in the root namespace
        for pa in self.selected.get(workload.namespace, ()):
            if selector_matches(pa.selector, workload.labels):
                return pa
        return None

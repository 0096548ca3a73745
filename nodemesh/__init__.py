"""nodemesh: a sidecarless, eBPF-based service mesh.

This package holds what more than one component speaks (manifests, the local cluster runtime, the
CLI). The components themselves live in the top-level packages `controller`, `node_agent` and
`waypoint` (see DESIGN.md).
"""

__version__ = "0.1.0"

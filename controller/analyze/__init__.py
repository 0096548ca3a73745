"""Config analysis: `meshctl analyze`, nodemesh's `istioctl analyze`.

Theory of operation. The inputs (Kubernetes YAML files, the local cluster's objects, or both) are
read at the edge (`inputs`: files through nodemesh.manifests, so a document that does not
validate is a finding, NM0001, with the validator's own message) and merged, files over cluster
objects of the same kind, namespace and name. One `World` is built from them: the controller's
own translation of the objects into the mesh model, plus the workloads selectors can pick. Each
check in `registry.CHECKS` is a small pure function of the World that yields `Finding`s: a code
from `findings.CODES`, the object it concerns, and a message saying what is wrong and what to do.
The CLI filters them (--suppress), renders them (`render`) and exits non-zero when one is at or
above the failure threshold. docs/analyze.md documents every code.
"""

from controller.analyze.findings import CODES, Code, Finding, Level, Suppression, fails
from controller.analyze.registry import CHECKS, run_checks
from controller.analyze.world import World

__all__ = [
    "CHECKS",
    "CODES",
    "Code",
    "Finding",
    "Level",
    "Suppression",
    "World",
    "fails",
    "run_checks",
]

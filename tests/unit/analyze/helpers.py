"""Analysis over objects and files with no cluster: the World and the findings, as data."""

from __future__ import annotations

import io
from pathlib import Path

from controller.analyze import Finding, World, run_checks
from controller.analyze.inputs import Inputs, gather
from nodemesh.manifests.load import parse_documents

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"


def findings_of(inputs: Inputs) -> list[Finding]:
    return sorted({*inputs.findings, *run_checks(inputs.world())}, key=Finding.sort_key)


def analyze_paths(*paths: str | Path) -> list[Finding]:
    return findings_of(gather([str(p) for p in paths], None, stdin=io.StringIO("")))


def objects(text: str) -> list[dict]:
    """Validated, normalized objects of a YAML text, as `meshctl apply` would store them."""
    return [m.obj for m in parse_documents(text, "test.yaml")]


def analyze_objects(text: str, *, extra: list[dict] = (), nodes=None) -> list[Finding]:
    world = World.build([*objects(text), *extra], nodes=nodes)
    return run_checks(world)


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]

"""Findings for people (one line each, as istioctl analyze prints) and for programs (-o json|yaml).

Text: `Warning [NM0101] (AuthorizationPolicy demo/x examples/a.yaml doc 1) message` and, under
it, where the code is documented. Data: a list of objects with stable keys, so scripts can match
on `code` and `level`.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.analyze.findings import Finding


def as_data(findings: Iterable[Finding]) -> list[dict]:
    return [
        {
            "code": f.code,
            "level": f.level.label,
            "title": f.title,
            "object": {"kind": f.kind, "namespace": f.namespace, "name": f.name},
            "origin": f.origin,
            "message": f.message,
            "documentation": f.anchor,
        }
        for f in findings
    ]


def as_text(findings: list[Finding], analyzed: str) -> str:
    if not findings:
        return f"No validation issues found when analyzing {analyzed}."
    lines = []
    for f in findings:
        where = " ".join(part for part in (f.object_name, f.origin) if part)
        lines.append(f"{f.level.label} [{f.code}] ({where}) {f.message}")
        lines.append(f"  see {f.anchor}")
    return "\n".join(lines)

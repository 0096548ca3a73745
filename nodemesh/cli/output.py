"""Rendering data for people (aligned tables) and for programs (-o json|yaml)."""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Sequence

import click
import yaml


def emit(doc: object, output: str) -> None:
    if output == "json":
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    elif output == "yaml":
        click.echo(yaml.safe_dump(doc, sort_keys=False).rstrip())
    else:
        raise click.UsageError(f"unknown output format {output!r}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def age(timestamp: str | float | None) -> str:
    if timestamp is None:
        return "<unknown>"
    if isinstance(timestamp, str):
        timestamp = calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))
    secs = max(0, int(time.time() - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"

"""Dashboards to JSON files, and the check that the checked-in files are still what the code makes.

The JSON in `daemonset/dashboards/` is generated, never edited: `render` is deterministic (sorted
keys, two-space indent, trailing newline), so regenerating an unchanged dashboard rewrites the
same bytes and any drift between code and files shows up as a diff and a failing test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from grafanalib.core import Dashboard

from nodemesh.dashboards import agent, control_plane, mesh, waypoint, workload

# File stem -> builder. The stems are the files' names in daemonset/dashboards/.
DASHBOARDS: Mapping[str, Callable[[], Dashboard]] = MappingProxyType(
    {
        "mesh-overview": mesh.build,
        "workload": workload.build,
        "node-agent": agent.build,
        "waypoint": waypoint.build,
        "control-plane": control_plane.build,
    }
)
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "daemonset" / "dashboards"


def _model_json(obj: object) -> object:
    """grafanalib objects nest unrendered: each knows its own JSON through `to_json_data`."""
    to_json_data = getattr(obj, "to_json_data", None)
    if to_json_data is None:
        raise TypeError(
            f"{type(obj).__name__} in a dashboard is not JSON and not a grafanalib object"
        )
    return to_json_data()


def to_data(dashboard: Dashboard) -> dict:
    """The dashboard as plain JSON data (dicts, lists, strings, numbers)."""
    return json.loads(json.dumps(dashboard.to_json_data(), default=_model_json))


def render(dashboard: Dashboard) -> str:
    return json.dumps(to_data(dashboard), sort_keys=True, indent=2) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text, for every dashboard."""
    return {f"{stem}.json": render(build()) for stem, build in DASHBOARDS.items()}


def write(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every dashboard into `directory`; the paths written."""
    written = []
    for name, text in rendered().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = DEFAULT_DIR) -> list[str]:
    """File names in `directory` that are missing or differ from what the code generates now."""
    return [
        name
        for name, text in rendered().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]

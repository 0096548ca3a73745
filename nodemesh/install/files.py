"""The checked-in daemonset/*.yaml files: the default render, split by what a reader looks for."""

from __future__ import annotations

from nodemesh.install import dashboards
from nodemesh.install.render import render, to_yaml
from nodemesh.install.values import Values
from nodemesh.install.waypoint import waypoint_objects

EXAMPLE_WAYPOINT = ("demo", "waypoint")  # namespace and Gateway name the template is shown for
_WAYPOINT_NOTE = (
    "The controller deploys this per Gateway of class nodemesh-waypoint (shown for Gateway\n"
    "demo/waypoint); nodemesh/install/waypoint.py builds it. Not applied by meshctl install."
)


def _file_of(doc: dict) -> str:
    if doc["kind"] == "CustomResourceDefinition":
        return "crds.yaml"
    if dashboards.SIDECAR_LABEL in doc["metadata"].get("labels", {}):
        return "dashboards.yaml"
    return "install.yaml"


def rendered_files(values: Values | None = None) -> dict[str, str]:
    values = values or Values()
    groups: dict[str, list[dict]] = {"crds.yaml": [], "install.yaml": [], "dashboards.yaml": []}
    for doc in render(values):
        groups[_file_of(doc)].append(doc)
    files = {name: to_yaml(docs) for name, docs in groups.items()}
    waypoint = waypoint_objects(values, *EXAMPLE_WAYPOINT)
    notes = {(doc["kind"], doc["metadata"]["name"]): _WAYPOINT_NOTE for doc in waypoint[:1]}
    files["waypoint-template.yaml"] = to_yaml(waypoint, comments=notes)
    return files

"""The Grafana dashboards as ConfigMaps, for Grafana's sidecar (label grafana_dashboard: "1").

The JSON is daemonset/dashboards/*.json, generated from nodemesh/dashboards/ and checked in; the
ConfigMaps are built from those files at render time so they can never differ from them.
"""

from __future__ import annotations

from pathlib import Path

from nodemesh.install import common
from nodemesh.install.values import Values

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "daemonset" / "dashboards"
SIDECAR_LABEL = "grafana_dashboard"


class DashboardsMissing(FileNotFoundError):
    """The dashboards' JSON is not where a source checkout keeps it."""


def dashboard_configmaps(values: Values, directory: Path = DASHBOARD_DIR) -> list[dict]:
    files = sorted(directory.glob("*.json"))
    if not files:
        raise DashboardsMissing(
            f"no dashboards in {directory}: run meshctl from a nodemesh source checkout, or "
            "--set dashboards.enabled=false"
        )
    return [_configmap(values, path) for path in files]


def _configmap(values: Values, path: Path) -> dict:
    meta = common.meta(values, f"nodemesh-dashboard-{path.stem}")
    meta["labels"][SIDECAR_LABEL] = "1"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta,
        "data": {path.name: path.read_text()},
    }

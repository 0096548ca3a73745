"""Prometheus' generated configuration and pod: parseable, and pointing at the right files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from nodemesh.local.prometheus_config import (
    NAME,
    PORT,
    PrometheusPaths,
    command,
    pod_manifest,
    render_config,
)
from nodemesh.local.prometheus_targets import (
    PATH_ANNOTATION,
    PORT_ANNOTATION,
    SCRAPE_ANNOTATION,
    pod_target,
)
from nodemesh.manifests.load import parse_documents

ROOT = Path(__file__).resolve().parents[3]
PATHS = PrometheusPaths.of(Path("/run/nodemesh/clusters/c1"))


def test_paths_live_under_the_cluster_state_dir():
    assert PATHS.config == Path("/run/nodemesh/clusters/c1/prometheus/prometheus.yml")
    assert PATHS.targets.parent == PATHS.root == PATHS.data.parent


def test_config_scrapes_the_runtime_file_sd_targets_at_a_short_interval():
    doc = yaml.safe_load(render_config(PATHS, "2s"))
    assert doc["global"]["scrape_interval"] == "2s"
    assert doc["global"]["scrape_timeout"] == "2s"  # never above the interval
    (job,) = doc["scrape_configs"]
    (sd,) = job["file_sd_configs"]
    assert sd["files"] == [str(PATHS.targets)]


def test_command_listens_on_the_node_address_only_and_stores_in_the_state_dir():
    argv = command("/usr/bin/prometheus", PATHS, "198.18.0.11")
    assert argv[0] == "/usr/bin/prometheus"
    assert f"--web.listen-address=198.18.0.11:{PORT}" in argv
    assert f"--storage.tsdb.path={PATHS.data}" in argv
    assert f"--config.file={PATHS.config}" in argv


def test_pod_is_a_valid_host_network_system_pod_that_scrapes_itself():
    text = pod_manifest("/usr/bin/prometheus", PATHS, "node1", "198.18.0.11")
    manifests = parse_documents(text, "<test>")  # validated as `meshctl apply` would
    kinds = [m.obj["kind"] for m in manifests]
    assert kinds == ["ServiceAccount", "Pod"]
    pod = manifests[1].obj
    assert pod["metadata"]["name"] == NAME
    assert pod["spec"]["hostNetwork"] is True
    assert pod["spec"]["nodeName"] == "node1"
    probe = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert (probe["port"], probe["path"]) == (PORT, "/-/ready")
    running = {
        **pod,
        "status": {"podIP": "198.18.0.11", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    target = pod_target(running)
    assert target["targets"] == [f"198.18.0.11:{PORT}"]
    assert target["labels"]["component"] == "prometheus"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")
def test_promtool_accepts_the_generated_config(tmp_path):
    paths = PrometheusPaths.of(tmp_path)
    paths.root.mkdir()
    paths.config.write_text(render_config(paths))
    paths.targets.write_text(json.dumps([{"targets": ["198.18.0.11:15020"], "labels": {}}]))
    proc = subprocess.run(
        ["promtool", "check", "config", str(paths.config)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_kubernetes_scrape_config_keys_on_the_same_annotations():
    text = (ROOT / "daemonset" / "prometheus" / "scrape-config.yaml").read_text()
    (job,) = yaml.safe_load(text)["scrape_configs"]
    sources = {s for r in job["relabel_configs"] for s in r.get("source_labels", [])}
    for annotation in (SCRAPE_ANNOTATION, PORT_ANNOTATION, PATH_ANNOTATION):
        meta = "__meta_kubernetes_pod_annotation_" + annotation.replace(".", "_").replace("/", "_")
        assert meta in sources, meta
    assert {"namespace", "pod", "node", "component"} <= {
        r.get("target_label") for r in job["relabel_configs"]
    }

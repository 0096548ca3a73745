"""`meshctl analyze` with CliRunner: files, a local cluster's files (no runtime), both."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from nodemesh.cli.analyze_cmd import FINDINGS_EXIT
from nodemesh.cli.main import cli
from nodemesh.local import state as state_module
from nodemesh.local.state import StateDir, write_json_atomic
from nodemesh.local.store import Store
from nodemesh.manifests.load import parse_documents
from tests.unit.analyze.helpers import EXAMPLES

SAMPLES = EXAMPLES / "analyze"
SELECTS_NOTHING = str(SAMPLES / "nm0101-policy-selects-nothing.yaml")  # a Warning
ROUTE_PARENT = str(SAMPLES / "nm0201-route-parent-not-found.yaml")  # an Error


def meshctl(*args: str, stdin: str | None = None):
    return CliRunner().invoke(cli, ["--cluster", "test", "analyze", *args], input=stdin)


def test_clean_files_exit_0_and_say_so():
    result = meshctl("-f", str(EXAMPLES / "hello"))
    assert result.exit_code == 0, result.output
    assert "No validation issues found" in result.output


def test_an_error_exits_79_with_the_coded_line_and_its_docs_anchor():
    result = meshctl("-f", ROUTE_PARENT)
    assert result.exit_code == FINDINGS_EXIT == 79
    first, second = result.output.splitlines()[:2]
    assert first.startswith("Error [NM0201] (HTTPRoute shop/web ")
    assert second.strip() == "see docs/analyze.md#nm0201"


def test_a_warning_fails_only_at_the_warning_threshold():
    assert meshctl("-f", SELECTS_NOTHING).exit_code == 0
    assert meshctl("-f", SELECTS_NOTHING, "--fail-threshold", "warning").exit_code == 79


def test_suppressed_findings_are_neither_shown_nor_counted():
    result = meshctl("-f", ROUTE_PARENT, "--suppress", "NM0201")
    assert result.exit_code == 0
    assert "NM0201" not in result.output


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_data_output(fmt):
    result = meshctl("-f", ROUTE_PARENT, "-o", fmt)
    data = json.loads(result.output) if fmt == "json" else yaml.safe_load(result.output)
    assert [(d["code"], d["level"], d["object"]["kind"]) for d in data] == [
        ("NM0201", "Error", "HTTPRoute")
    ]
    assert data[0]["documentation"] == "docs/analyze.md#nm0201"


def test_stdin_is_read_once_even_when_a_document_is_invalid():
    text = (SAMPLES / "nm0001-invalid-manifest.yaml").read_text()
    text += (
        "---\n" + (SAMPLES / "nm0101-policy-selects-nothing.yaml").read_text().split("---", 3)[3]
    )
    result = meshctl("-f", "-", "--fail-threshold", "Info", stdin=text)
    assert result.exit_code == 79
    assert "[NM0001]" in result.output


def test_nothing_to_analyze_is_a_usage_error():
    result = meshctl()
    assert result.exit_code == 2
    assert "give -f FILE_OR_DIR, --cluster, or both" in result.output


def test_an_unknown_suppression_is_a_usage_error():
    assert meshctl("-f", ROUTE_PARENT, "--suppress", "IST0101").exit_code == 2


# --- the local cluster ----------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path, monkeypatch) -> StateDir:
    """A local cluster's state directory: a store and a published status (no runtime)."""
    monkeypatch.setattr(state_module, "DEFAULT_ROOT", tmp_path)
    state = StateDir("test")
    write_json_atomic(state.cluster_file, {"name": "test"})
    write_json_atomic(state.status_file, {"pods": [], "services": [], "nodes": []})
    return state


def test_cluster_objects_are_analyzed(local):
    text = (SAMPLES / "nm0206-route-parent-has-no-waypoint.yaml").read_text()
    Store(local).apply(parse_documents(text, "t.yaml"))
    result = meshctl("--cluster", "--fail-threshold", "Warning")
    assert result.exit_code == 79
    assert "Warning [NM0206] (HTTPRoute shop/web) " in result.output  # no file: no origin


def test_files_replace_the_cluster_objects_they_name(local):
    """The cluster's route lacks a waypoint; the file gives the namespace one: nothing left."""
    text = (SAMPLES / "nm0206-route-parent-has-no-waypoint.yaml").read_text()
    Store(local).apply(parse_documents(text, "t.yaml"))
    fixed = (SAMPLES / "nm0205-route-rule-has-no-backend.yaml").read_text().split("---")[:3]
    path = local.path / "fix.yaml"
    path.write_text("---".join(fixed))
    result = meshctl("--cluster", "-f", str(path), "--fail-threshold", "Info")
    assert result.exit_code == 0, result.output


def test_no_cluster_is_one_line_exit_1(tmp_path, monkeypatch):
    monkeypatch.setattr(state_module, "DEFAULT_ROOT", tmp_path)
    result = meshctl("--cluster")
    assert result.exit_code == 1
    assert "meshctl local up" in result.output

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from nodemesh.cli.main import cli
from nodemesh.install import render
from nodemesh.install.values import Values, with_overrides


def test_dry_run_yaml_is_the_render():
    result = CliRunner().invoke(cli, ["install", "--dry-run"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert docs == render.render(Values())


def test_dry_run_json_with_set():
    result = CliRunner().invoke(
        cli, ["install", "--dry-run", "-o", "json", "--set", "controller.replicas=1"]
    )
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed["kind"] == "List"
    assert listed["items"] == render.render(with_overrides(Values(), ["controller.replicas=1"]))


def test_unknown_set_key_exits_1_naming_it():
    result = CliRunner().invoke(cli, ["install", "--dry-run", "--set", "controler.replicas=1"])
    assert result.exit_code == 1
    assert "unknown key 'controler.replicas'" in result.output


def test_list_values():
    result = CliRunner().invoke(cli, ["install", "--list-values"])
    assert result.exit_code == 0
    assert "controller.replicas=2  [int]" in result.output


def test_uninstall_dry_run_in_reverse():
    result = CliRunner().invoke(cli, ["uninstall", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "would delete DaemonSet nodemesh-system/nodemesh-agent"
    assert lines[-1].startswith("would delete CustomResourceDefinition ")

"""The CNI installer: chaining into the node's primary configuration, idempotently, and out."""

from __future__ import annotations

import json
import stat

import pytest

from node_agent import cni_install as ci

CALICO = {
    "name": "k8s-pod-network",
    "cniVersion": "0.3.1",
    "plugins": [{"type": "calico"}, {"type": "portmap", "capabilities": {"portMappings": True}}],
}
BRIDGE_CONF = {"cniVersion": "1.0.0", "name": "bridge", "type": "bridge", "bridge": "cni0"}
ENTRY = ci.default_entry("/var/run/nodemesh/cni.sock")


def test_entry_is_appended_last_to_the_primary():
    files = {"10-calico.conflist": json.dumps(CALICO), "99-other.conflist": json.dumps(CALICO)}
    changes = ci.plan_install(files, ENTRY)
    assert list(changes.write) == ["10-calico.conflist"] and changes.remove == ()
    written = json.loads(changes.write["10-calico.conflist"])
    assert [p["type"] for p in written["plugins"]] == ["calico", "portmap", "nodemesh-cni"]
    assert written["plugins"][-1]["agentSocket"] == "/var/run/nodemesh/cni.sock"
    assert written["name"] == "k8s-pod-network"


def test_install_is_idempotent():
    files = {"10-calico.conflist": json.dumps(CALICO)}
    first = ci.plan_install(files, ENTRY)
    again = ci.plan_install(dict(first.write), ENTRY)
    assert again.empty


def test_an_older_entry_is_replaced_not_duplicated():
    old = {**CALICO, "plugins": [*CALICO["plugins"], {"type": "nodemesh-cni", "old": True}]}
    changes = ci.plan_install({"10-calico.conflist": json.dumps(old)}, ENTRY)
    plugins = json.loads(changes.write["10-calico.conflist"])["plugins"]
    assert [p for p in plugins if p["type"] == "nodemesh-cni"] == [ENTRY]


def test_single_plugin_conf_becomes_a_conflist():
    changes = ci.plan_install({"10-bridge.conf": json.dumps(BRIDGE_CONF)}, ENTRY)
    assert changes.remove == ("10-bridge.conf",)
    written = json.loads(changes.write["10-bridge.conflist"])
    assert written["name"] == "bridge" and written["cniVersion"] == "1.0.0"
    assert written["plugins"] == [{"type": "bridge", "bridge": "cni0"}, ENTRY]


def test_primary_is_the_first_by_name():
    assert ci.primary({"20-b.conflist": "", "10-a.conf": "", "05-notes.txt": ""}) == "10-a.conf"
    assert ci.primary({"README": ""}) is None


def test_no_configuration_says_to_install_the_cluster_cni():
    with pytest.raises(ci.CniInstallError, match="install that first"):
        ci.plan_install({}, ENTRY)


def test_malformed_configuration_names_the_file():
    with pytest.raises(ci.CniInstallError, match=r"10-calico\.conflist: not valid JSON"):
        ci.plan_install({"10-calico.conflist": "{nope"}, ENTRY)
    with pytest.raises(ci.CniInstallError, match="must hold a JSON object"):
        ci.plan_install({"10-calico.conflist": "[]"}, ENTRY)
    with pytest.raises(ci.CniInstallError, match="'plugins' must be a list"):
        ci.plan_install({"10-calico.conflist": json.dumps({"plugins": {}})}, ENTRY)


def test_uninstall_removes_only_our_entry_everywhere():
    chained = ci.with_entry(CALICO, ENTRY)
    files = {
        "10-calico.conflist": json.dumps(chained),
        "20-untouched.conflist": json.dumps(CALICO),
        "30-broken.conflist": "{",
    }
    changes = ci.plan_uninstall(files)
    assert list(changes.write) == ["10-calico.conflist"]
    assert json.loads(changes.write["10-calico.conflist"]) == CALICO
    assert ci.plan_uninstall({"10-calico.conflist": json.dumps(CALICO)}).empty


def test_on_disk_install_and_uninstall(tmp_path):
    conf, bin_dir, home = tmp_path / "net.d", tmp_path / "bin", tmp_path / "home"
    conf.mkdir()
    bin_dir.mkdir()
    (conf / "10-calico.conflist").write_text(json.dumps(CALICO))
    wrapper = tmp_path / "wrapper"
    wrapper.write_text("#!/bin/sh\nexit 0\n")
    ci.install_plugin(wrapper, bin_dir, home)
    installed = bin_dir / "nodemesh-cni"
    assert installed.read_text() == wrapper.read_text()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    assert (home / "node_agent" / "cni" / "protocol.py").is_file()
    assert (home / "node_agent" / "__init__.py").is_file()
    assert ci.sync(conf, ENTRY) is True
    assert ci.sync(conf, ENTRY) is False  # nothing rewritten the second time
    plugins = json.loads((conf / "10-calico.conflist").read_text())["plugins"]
    assert plugins[-1] == ENTRY
    assert [p.name for p in conf.iterdir()] == ["10-calico.conflist"]  # no temp files left
    ci.uninstall(conf, bin_dir)
    assert json.loads((conf / "10-calico.conflist").read_text()) == CALICO
    assert not installed.exists()


def test_main_once_and_uninstall(tmp_path):
    conf, bin_dir = tmp_path / "net.d", tmp_path / "bin"
    conf.mkdir()
    bin_dir.mkdir()
    common = ["--conf-dir", str(conf), "--bin-dir", str(bin_dir), "--home", str(tmp_path / "h")]
    assert ci.main(common) == 1  # no cluster CNI yet
    (conf / "10-bridge.conf").write_text(json.dumps(BRIDGE_CONF))
    assert ci.main(common) == 0
    assert [p.name for p in conf.iterdir()] == ["10-bridge.conflist"]
    assert ci.main([*common, "--uninstall"]) == 0
    plugins = json.loads((conf / "10-bridge.conflist").read_text())["plugins"]
    assert [p["type"] for p in plugins] == ["bridge"]

from nodemesh.dashboards.__main__ import main
from nodemesh.dashboards.render import DASHBOARDS, rendered, stale, write


def test_render_is_deterministic():
    assert rendered() == rendered()


def test_write_then_nothing_is_stale(tmp_path):
    written = write(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{s}.json" for s in DASHBOARDS)
    assert stale(tmp_path) == []


def test_a_changed_or_missing_file_is_stale(tmp_path):
    write(tmp_path)
    (tmp_path / "waypoint.json").write_text("{}\n")
    (tmp_path / "workload.json").unlink()
    assert sorted(stale(tmp_path)) == ["waypoint.json", "workload.json"]


def test_main_check_exit_codes(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    (tmp_path / "node-agent.json").write_text("{}\n")
    assert main(["--check", str(tmp_path)]) == 1
    assert "node-agent.json: out of date" in capsys.readouterr().out

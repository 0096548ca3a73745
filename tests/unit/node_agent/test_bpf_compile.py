"""node_agent.bpf_compile without a kernel: the manifest, the child's command line, its failures.

The failure tests run a real child process (this interpreter), but one that never reaches BCC's
compiler or the bpf() syscall, so they need neither root nor bpffs.
"""

from __future__ import annotations

import argparse
import json
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent import bpf_compile as bc
from node_agent import bpf_types as bt

PIN_DIR = "/run/nodemesh/bpf/c1/node1/_compiled"
HOOKS = [h.name for h in bt.HOOKS]
MAPS = [*bt.MAP_LAYOUTS, bt.MAP_EVENTS]


def full_manifest(pin_dir: str = PIN_DIR) -> bc.Manifest:
    names = iter(range(1, 100))
    return bc.Manifest(
        programs={n: bc.Pinned(f"{pin_dir}/{n}", next(names)) for n in HOOKS},
        maps={n: bc.Pinned(f"{pin_dir}/{n}", next(names)) for n in MAPS},
    )


names = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=20)
entries = st.dictionaries(
    names,
    st.builds(bc.Pinned, names.map(lambda n: f"/sys/fs/bpf/x/{n}"), st.integers(1, 2**32 - 1)),
    min_size=1,
    max_size=6,
)


@given(entries, entries)
def test_a_manifest_survives_its_json_line(programs, maps):
    manifest = bc.Manifest(programs, maps)
    line = manifest.to_json()
    assert "\n" not in line
    assert bc.Manifest.from_json(line) == manifest


def test_every_prefix_of_a_manifest_is_refused_as_a_manifest_error():
    """A child killed mid-print leaves a cut line: it must read as 'no manifest', not crash."""
    line = full_manifest().to_json()
    for end in range(len(line)):
        with pytest.raises(bc.ManifestError):
            bc.Manifest.from_json(line[:end])


@pytest.mark.parametrize(
    ("doc", "complaint"),
    [
        ([], "must be a JSON object"),
        ({"maps": {"m": {"path": "/p", "id": 1}}}, "'programs' must be a non-empty object"),
        ({"programs": {}, "maps": {"m": {"path": "/p", "id": 1}}}, "'programs' must be"),
        ({"programs": {"p": {"path": "/p"}}, "maps": {"m": {"path": "/p", "id": 1}}}, "programs.p"),
        ({"programs": {"p": {"path": "rel", "id": 1}}, "maps": {}}, "programs.p.path must be"),
        ({"programs": {"p": {"path": "/p", "id": 0}}, "maps": {}}, "programs.p.id must be"),
        ({"programs": {"p": {"path": "/p", "id": True}}, "maps": {}}, "programs.p.id must be"),
        ({"programs": {"p": {"path": "/p", "id": "7"}}, "maps": {}}, "programs.p.id must be"),
        ({"programs": {"p": {"path": "/p", "id": 1}}, "maps": {"m": 3}}, "maps.m must be"),
    ],
)
def test_a_malformed_manifest_says_which_field_is_wrong(doc, complaint):
    with pytest.raises(bc.ManifestError, match=complaint.replace(".", r"\.")):
        bc.Manifest.from_json(json.dumps(doc))


def test_a_complete_manifest_passes_its_check():
    full_manifest().check(bc.Path(PIN_DIR), HOOKS, MAPS)


def test_a_hook_or_map_missing_from_the_manifest_is_named():
    manifest = full_manifest()
    del manifest.programs["sk_lookup"]
    del manifest.maps[bt.MAP_EVENTS]
    with pytest.raises(bc.ManifestError, match=f"program sk_lookup, map {bt.MAP_EVENTS}"):
        manifest.check(bc.Path(PIN_DIR), HOOKS, MAPS)


def test_a_pin_outside_the_pin_directory_is_refused():
    """The agent unpins what the manifest names: a path elsewhere must never get that far."""
    manifest = full_manifest()
    manifest.maps[bt.MAP_PODS] = bc.Pinned("/sys/fs/bpf/someone-else/map", 5)
    with pytest.raises(bc.ManifestError, match="someone-else/map is not in"):
        manifest.check(bc.Path(PIN_DIR), HOOKS, MAPS)


def test_the_childs_command_line_parses_back_to_what_the_agent_meant(tmp_path):
    cflags = bc.cflags_for(
        tmp_path, outbound_port=15001, hbone_port=15008, mark=0x539, max_pods=8, max_flows=64
    )
    argv = bc.child_argv(tmp_path / "_compiled", tmp_path, cflags)
    assert argv[:4] == [sys.executable, "-m", "node_agent.capture", bc.COMMAND]
    parser = argparse.ArgumentParser()
    bc.add_arguments(parser)
    args = parser.parse_args(argv[4:])
    assert (args.pin_dir, args.bpf_dir, args.cflag) == (tmp_path / "_compiled", tmp_path, cflags)
    assert f"-I{tmp_path}" in cflags and "-DNODEMESH_MARK=0x539" in cflags
    assert "-DNODEMESH_MAX_PODS=8" in cflags and "-DNODEMESH_MAX_FLOWS=64" in cflags


def test_the_sources_are_one_text_with_the_shared_header_first(tmp_path):
    for name in bc.SOURCES:
        (tmp_path / name).write_text(f"/* {name} */\n")
    text = bc.source_text(tmp_path).decode()
    markers = [line for line in text.splitlines() if line.startswith("#line 1")]
    assert markers == [f'#line 1 "{name}"' for name in bc.SOURCES]
    assert text.index("nodemesh_lib.h */") < text.index("sk_lookup.c */")


# -- the child failing: each way ends in a CompileError that shows the child's stderr, and no pin --
def stale_pin_dir(tmp_path):
    pin_dir = tmp_path / "_compiled"
    pin_dir.mkdir()
    (pin_dir / "half-made").write_text("")
    return pin_dir


def test_a_child_that_fails_raises_with_its_stderr(tmp_path):
    pin_dir = stale_pin_dir(tmp_path)
    empty = tmp_path / "no-sources"
    empty.mkdir()
    with pytest.raises(bc.CompileError, match="exited 1") as raised:
        bc.load_in_child(pin_dir, empty, [])
    assert "child stderr" in str(raised.value) and "nodemesh_lib.h" in str(raised.value)
    assert not pin_dir.exists()


def test_a_child_without_a_manifest_raises_with_its_stderr(tmp_path, monkeypatch):
    code = "import sys; print('compiled!'); print('warning: x', file=sys.stderr)"
    monkeypatch.setattr(bc, "child_argv", lambda *a: [sys.executable, "-c", code])
    pin_dir = stale_pin_dir(tmp_path)
    with pytest.raises(bc.CompileError, match="not JSON") as raised:
        bc.load_in_child(pin_dir, tmp_path, [])
    assert "child stderr: warning: x" in str(raised.value)
    assert not pin_dir.exists()


def test_a_child_that_hangs_is_killed_at_the_timeout(tmp_path, monkeypatch):
    code = "import sys, time; print('stuck', file=sys.stderr, flush=True); time.sleep(600)"
    monkeypatch.setattr(bc, "child_argv", lambda *a: [sys.executable, "-c", code])
    pin_dir = stale_pin_dir(tmp_path)
    with pytest.raises(bc.CompileError, match="was killed"):
        bc.load_in_child(pin_dir, tmp_path, [], timeout=1.0)
    assert not pin_dir.exists()


def test_the_event_ring_size_is_a_cflag_and_must_be_a_power_of_two(tmp_path):
    common = dict(outbound_port=15001, hbone_port=15008, mark=0x539, max_pods=8, max_flows=64)
    assert "-DNODEMESH_EVENT_PAGES=64" in bc.cflags_for(tmp_path, **common)
    assert "-DNODEMESH_EVENT_PAGES=1" in bc.cflags_for(tmp_path, **common, event_pages=1)
    for wrong in (0, 3, 48):
        with pytest.raises(ValueError, match="event_pages must be a power of two"):
            bc.cflags_for(tmp_path, **common, event_pages=wrong)

"""The pure parts of node_agent.libbpf: the possible-CPU list, struct layouts, error messages.

The calls into libbpf itself need root and a kernel; tests/netns/test_capture.py runs them.
"""

from __future__ import annotations

import ctypes as ct
import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node_agent import bpf_types as bt
from node_agent import libbpf


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("0\n", [0]),
        ("0-1\n", [0, 1]),
        ("0-3,6,8-9", [0, 1, 2, 3, 6, 8, 9]),
        ("4,0-1", [0, 1, 4]),
        ("0-2,1-3", [0, 1, 2, 3]),
    ],
)
def test_cpu_lists_as_the_kernel_writes_them(text, cpus):
    assert libbpf.parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["", "\n", "1-", "-1", "3-1", "0,,1", "0-1-2", "a", "0 -1", "0;1"])
def test_anything_else_is_refused_rather_than_miscounted(text):
    with pytest.raises(ValueError, match="not a CPU list"):
        libbpf.parse_cpu_list(text)


@st.composite
def cpu_lists(draw) -> tuple[str, list[int]]:
    """A set of CPUs written as the kernel might: runs as ranges or singles, in any order."""
    runs = draw(
        st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 64)), min_size=1, max_size=8)
    )
    parts = [f"{low}-{low + length}" if length else str(low) for low, length in runs]
    cpus = sorted({cpu for low, length in runs for cpu in range(low, low + length + 1)})
    return ",".join(draw(st.permutations(parts))) + draw(st.sampled_from(["", "\n"])), cpus


@given(cpu_lists())
def test_any_cpu_list_parses_to_exactly_its_cpus(case):
    text, cpus = case
    assert libbpf.parse_cpu_list(text) == cpus


@given(cpu_lists())
def test_every_prefix_of_a_cpu_list_parses_or_is_refused_with_value_error(case):
    """A short read of the sysfs file must fail as ValueError, never as anything else."""
    text, _ = case
    for end in range(len(text)):
        try:
            parsed = libbpf.parse_cpu_list(text[:end])
        except ValueError:
            continue
        assert parsed == sorted(set(parsed)) and all(cpu >= 0 for cpu in parsed)


def test_the_possible_cpus_of_this_machine_are_read_from_sysfs(tmp_path):
    possible = tmp_path / "possible"
    possible.write_text("0-7\n")
    assert libbpf.possible_cpus(possible) == list(range(8))


def test_a_per_cpu_map_value_has_one_slot_per_cpu():
    counters = libbpf.Map(-1, bt.MAP_COUNTERS, ct.c_uint64, bt.Counters, cpus=6)
    assert ct.sizeof(counters.value) == 6 * ct.sizeof(bt.Counters)
    assert libbpf.Map(-1, bt.MAP_PODS, ct.c_uint32, bt.Pod).value is bt.Pod


def test_info_structs_follow_the_kernel_layout():
    """include/uapi/linux/bpf.h: the link target union is 8-byte aligned after prog_id."""
    assert libbpf.LinkInfo.target.offset == 16
    assert libbpf.MapInfo.key_size.offset == 8 and libbpf.MapInfo.value_size.offset == 12
    assert libbpf.MapInfo.name.offset == 24


def test_an_error_names_the_object_the_errno_text_and_what_to_do():
    err = libbpf.BpfError("open pinned /sys/fs/bpf/x", errno.ENOENT)
    assert err.errno == errno.ENOENT
    assert (
        str(err) == "open pinned /sys/fs/bpf/x: No such file or directory (nothing is pinned there)"
    )
    full = libbpf.BpfError("update nodemesh_pods_v1", errno.E2BIG)
    assert "NODEMESH_MAX_" in str(full)
    assert str(libbpf.BpfError("x", errno.EIO)) == "x: Input/output error"

"""cgroup v2 directories for a local cluster: one tree per cluster, one leaf per container.

Every process the cluster starts sits under `<cgroup2 mount>/nodemesh-<cluster>/`, so teardown can
kill all of them at once with `cgroup.kill` even after the runtime crashed, and the node agent can
attach eBPF programs to a pod's directory. Hybrid hosts mount cgroup v2 at /sys/fs/cgroup/unified,
so the mount point is read from /proc/mounts instead of assumed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


class CgroupError(RuntimeError):
    pass


def cgroup2_root() -> Path:
    with open("/proc/mounts") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                return Path(fields[1])
    raise CgroupError("no cgroup v2 hierarchy is mounted (looked for type cgroup2 in /proc/mounts)")


def ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def procs(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def all_procs(path: Path) -> list[int]:
    """Pids in `path` and every descendant."""
    if not path.is_dir():
        return []
    found: list[int] = []
    for dirpath, _dirs, _files in os.walk(path):
        found.extend(procs(Path(dirpath)))
    return found


def populated(path: Path) -> bool:
    try:
        for line in (path / "cgroup.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "populated":
                return value.strip() == "1"
    except FileNotFoundError:
        return False
    return bool(all_procs(path))


def kill_tree(path: Path) -> None:
    """SIGKILL every process under `path`: cgroup.kill where the kernel has it (5.14+)."""
    if not path.is_dir():
        return
    kill_file = path / "cgroup.kill"
    if kill_file.exists():
        kill_file.write_text("1")
    else:
        for pid in all_procs(path):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def remove_tree(path: Path, timeout: float = 5.0) -> None:
    """Kill everything under `path`, wait for it to empty, and remove the directories bottom-up."""
    if not path.is_dir():
        return
    kill_tree(path)
    deadline = time.monotonic() + timeout
    while populated(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CgroupError(f"cannot remove cgroup {dirpath}: {exc}") from exc

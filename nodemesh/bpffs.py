"""Where nodemesh pins BPF objects: a bpffs of its own, mounted on demand, removed after use.

Pinned links outlive the agent that made them (that is how a restarted agent re-adopts pods), so
they need a BPF filesystem. A machine without one mounted must not end up with one at
/sys/fs/bpf because nodemesh ran: in local mode the agents mount a bpffs at LOCAL_ROOT, and
`meshctl local down` unmounts it with the last cluster. In Kubernetes the node's /sys/fs/bpf is
already mounted (and shared with other BPF users), so nothing is mounted or unmounted there.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

LOCAL_ROOT = Path("/run/nodemesh/bpf")
# Preloaded iterators the kernel shows in every bpffs mount; not pins, cannot be removed.
KERNEL_FILES = frozenset({"maps.debug", "progs.debug"})
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


class BpffsError(RuntimeError):
    pass


def _mounts() -> list[tuple[Path, str]]:
    with open("/proc/mounts") as fh:
        return [(Path(f[1]), f[2]) for f in (line.split() for line in fh) if len(f) >= 3]


def on_bpffs(path: Path) -> bool:
    """Whether `path` lies on a bpf filesystem (the longest matching mount point decides)."""
    path = Path(os.path.abspath(path))
    best: tuple[int, str] = (-1, "")
    for point, fstype in _mounts():
        if path == point or point in path.parents:
            best = max(best, (len(point.parts), fstype))
    return best[1] == "bpf"


def ensure(mount_point: Path) -> None:
    """Make `mount_point` usable for pins, mounting a bpffs there if it is not on one."""
    if on_bpffs(mount_point):
        return
    mount_point.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _libc.mount(b"bpf", str(mount_point).encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise BpffsError(f"cannot mount a bpffs on {mount_point}: {os.strerror(err)}")


def is_own_mount(mount_point: Path) -> bool:
    return (Path(os.path.abspath(mount_point)), "bpf") in _mounts()


def release(mount_point: Path) -> bool:
    """Unmount and remove a bpffs mounted at `mount_point` once it holds no pins; True if done.

    A mount point that is not itself a bpffs mount (pins under the system's /sys/fs/bpf) is
    never unmounted, and neither is one that still holds pins."""
    if not is_own_mount(mount_point):
        return False
    if set(os.listdir(mount_point)) - KERNEL_FILES:
        return False
    if _libc.umount2(str(mount_point).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise BpffsError(f"cannot unmount the bpffs on {mount_point}: {os.strerror(err)}")
    mount_point.rmdir()
    return True

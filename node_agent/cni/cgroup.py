"""Finding a pod's cgroup v2 directory at CNI ADD time: what the agent attaches connect4 to.

The runtime tells the plugin the pod's netns but not its cgroup, and the cgroup must be the POD's
(every container of the pod sits below it), not the sandbox container's. Two ways, in order:

1. By pod UID. kubelet creates the pod's cgroup before it asks the runtime for the sandbox, so it
   exists at ADD time, named after the UID: `kubepods-<qos>-pod<uid with _>.slice` with the
   systemd driver, `pod<uid>` with the cgroupfs driver, below `kubepods.slice` / `kubepods`
   (or the config's `podCgroupRoots`). Found by a shallow walk of those roots.
2. By the netns. A process already in the sandbox's netns (the pause container, when the
   runtime started it before calling CNI, as CRI-O does; any pod process on CHECK) names its
   cgroup in /proc/<pid>/cgroup ("0::/path"); its pod-level ancestor is the component naming
   the UID, else (no UID in the path: local mode, non-Kubernetes runtimes) the directory itself.

Neither works → the plugin fails ADD with its own code (node_agent.cni.protocol.Code.NO_CGROUP).
Path logic is pure (`pod_cgroup_in`, `uid_markers`, `parse_proc_cgroup`); the walks are thin.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

DEFAULT_ROOTS = ("kubepods.slice", "kubepods")
MAX_DEPTH = 3  # kubepods[.slice] / <qos> / pod<uid>: the pod sits at most this deep below a root


class CgroupNotFound(LookupError):
    """No cgroup for the pod; the message lists what was tried."""


def uid_markers(uid: str) -> tuple[str, ...]:
    """Directory-name fragments that mark a pod's cgroup (cgroupfs, then systemd spelling)."""
    if not uid:
        return ()
    return (f"pod{uid}", f"pod{uid.replace('-', '_')}")


def names_pod(directory: str, uid: str) -> bool:
    return any(
        directory == marker or directory.endswith(f"-{marker}.slice") for marker in uid_markers(uid)
    )


def parse_proc_cgroup(text: str) -> str:
    """The cgroup v2 path in /proc/<pid>/cgroup ("0::/a/b" → "/a/b"), or "" if it has none."""
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            return path
    return ""


def pod_cgroup_in(process_cgroup: str, uid: str) -> str:
    """The pod-level cgroup of a process in the pod: the ancestor naming the UID, else its own."""
    parts = [p for p in process_cgroup.split("/") if p]
    for i, part in enumerate(parts):
        if names_pod(part, uid):
            return "/" + "/".join(parts[: i + 1])
    return "/" + "/".join(parts)


# --- thin I/O -------------------------------------------------------------------------------------


def cgroup2_mount(mounts: str) -> Path | None:
    """The cgroup v2 mount point listed in /proc/mounts text (hybrid hosts: .../unified)."""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def find_by_uid(mount: Path, uid: str, roots: Iterable[str]) -> Path | None:
    """The pod's directory below one of `roots` (relative to the mount, or absolute), or None."""
    if not uid:
        return None
    for root in roots:
        found = _walk(mount / root, uid, MAX_DEPTH)  # an absolute root is taken as it is
        if found is not None:
            return found
    return None


def _walk(directory: Path, uid: str, depth: int) -> Path | None:
    try:
        children = [e for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    for child in children:
        if names_pod(child.name, uid):
            return Path(child.path)
    if depth <= 1:
        return None
    for child in children:
        found = _walk(Path(child.path), uid, depth - 1)
        if found is not None:
            return found
    return None


def pids_in_netns(netns_path: str, proc: Path = Path("/proc")) -> list[int]:
    """Processes whose network namespace is the one at `netns_path` (a bind mount or /proc link)."""
    try:
        target = os.stat(netns_path)
    except OSError:
        return []
    pids = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(f"{entry.path}/ns/net")
        except OSError:  # gone, or a kernel thread
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry.name))
    return sorted(pids)


def find_pod_cgroup(uid: str, netns_path: str, roots: Iterable[str] = ()) -> tuple[str, str]:
    """(absolute cgroup directory, how it was found); raises CgroupNotFound."""
    try:
        mount = cgroup2_mount(Path("/proc/mounts").read_text())
    except OSError:
        mount = None
    if mount is None:
        raise CgroupNotFound("no cgroup v2 hierarchy is mounted (cgroup2 in /proc/mounts)")
    roots = tuple(roots) or DEFAULT_ROOTS
    by_uid = find_by_uid(mount, uid, roots)
    if by_uid is not None:
        return str(by_uid), "pod uid"
    for pid in pids_in_netns(netns_path):
        try:
            path = parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
        except OSError:
            continue
        if path and path != "/":
            return str(mount / pod_cgroup_in(path, uid).lstrip("/")), f"pid {pid} in the netns"
    raise CgroupNotFound(
        f"no cgroup for pod uid {uid or '(none given)'}: none under {', '.join(roots)} in "
        f"{mount}, and no process (outside the root cgroup) in netns {netns_path}; set "
        "podCgroupRoots in the plugin's config to where kubelet puts pod cgroups"
    )

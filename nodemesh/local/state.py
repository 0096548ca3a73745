"""Where a local cluster keeps its files, and how they are written safely.

One directory per cluster holds everything later commands need: the address plan, the desired
objects (`store.json`, written by `meshctl apply`), the runtime's published status (`status.json`),
the runtime daemon's pid and log, and per-pod logs. It lives under /run, which a reboot clears
just as it clears the network namespaces the files describe.

Writers replace whole files with rename(2), so a reader never sees half a file; writers that
read-modify-write (apply, delete) hold an flock on a lock file beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_ROOT = Path(os.environ.get("NODEMESH_STATE_ROOT", "/run/nodemesh/clusters"))
DEFAULT_CLUSTER = "nodemesh"


def cluster_name_from_env() -> str:
    return os.environ.get("NODEMESH_CLUSTER", DEFAULT_CLUSTER)


def write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: Path, default: object = None) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


class StateDir:
    """The files of one cluster."""

    def __init__(self, cluster: str, root: Path | None = None) -> None:
        self.cluster = cluster
        self.path = (root or DEFAULT_ROOT) / cluster

    @property
    def cluster_file(self) -> Path:
        return self.path / "cluster.json"

    @property
    def store_file(self) -> Path:
        return self.path / "store.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def runtime_file(self) -> Path:
        return self.path / "runtime.json"

    @property
    def pid_file(self) -> Path:
        return self.path / "runtime.pid"

    @property
    def daemon_log(self) -> Path:
        return self.path / "runtime.log"

    def pod_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.path / "pods" / f"{namespace}_{name}_{uid[:8]}"

    def exists(self) -> bool:
        return self.cluster_file.exists()

    @contextlib.contextmanager
    def locked(self, name: str = "store") -> Iterator[None]:
        """Serialize read-modify-write of the store between concurrent meshctl commands."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / f".{name}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def daemon_pid(self) -> int | None:
        """The runtime daemon's pid if it is alive (and really ours: cmdline names the cluster)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        if b"nodemesh.local.runtime" in cmdline and self.cluster.encode() in cmdline[1:]:
            return pid
        return None


def list_clusters(root: Path | None = None) -> list[str]:
    base = root or DEFAULT_ROOT
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir())

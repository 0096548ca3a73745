"""The local cluster as the controller's registry: the store plus the runtime's published pods.

`meshctl apply` writes store.json and the runtime writes status.json; both are replaced whole with
rename(2), so a changed (inode, mtime) pair means a new complete file. Polling two stat() calls
every 50 ms is cheaper and simpler than inotify here, and keeps change-to-push well under a second.
"""

from __future__ import annotations

import os
from pathlib import Path

from nodemesh.local.state import StateDir, read_json
from nodemesh.local.store import Store


class LocalRegistry:
    def __init__(self, state_dir: Path) -> None:
        self.state = StateDir(state_dir.name, state_dir.parent)
        self._seen: tuple | None = None

    def _stamp(self) -> tuple:
        stamp = []
        for path in (self.state.store_file, self.state.status_file):
            try:
                st = os.stat(path)
                stamp.append((st.st_ino, st.st_mtime_ns))
            except FileNotFoundError:
                stamp.append(None)
        return tuple(stamp)

    def changed(self) -> bool:
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        return True

    def objects(self) -> list[dict]:
        """Stored objects plus the runtime's pods (with their IPs, nodes and readiness)."""
        status = read_json(self.state.status_file, {}) or {}
        return Store(self.state).objects() + list(status.get("pods", []))

    def service_accounts_on(self, node: str) -> set[tuple[str, str]]:
        status = read_json(self.state.status_file, {}) or {}
        return {
            (p["metadata"]["namespace"], p["spec"].get("serviceAccountName", "default"))
            for p in status.get("pods", [])
            if p.get("spec", {}).get("nodeName") == node
        }

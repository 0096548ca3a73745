"""Driving a real local cluster through the real `meshctl`, and proving it left nothing behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nodemesh import bpffs
from nodemesh.local import cgroups, netns
from nodemesh.local.addressing import cluster_netns_prefix
from nodemesh.local.launch import ETC_NETNS
from nodemesh.local.state import StateDir, list_clusters

MESHCTL = str(Path(sys.executable).parent / "meshctl")


def cluster_name_for(test_name: str) -> str:
    return "t" + hashlib.sha256(test_name.encode()).hexdigest()[:8]


@dataclass
class LocalCluster:
    name: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "NODEMESH_CLUSTER": self.name}

    def meshctl(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ):
        proc = subprocess.run(
            [MESHCTL, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"meshctl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def exec(self, pod: str, *cmd: str, namespace: str = "default", check: bool = True):
        return self.meshctl("exec", pod, "-n", namespace, "--", *cmd, check=check, timeout=30)

    def leftovers(self) -> list[str]:
        found = [f"netns {n}" for n in netns.list_netns(cluster_netns_prefix(self.name))]
        cg = cgroups.cgroup2_root() / f"nodemesh-{self.name}"
        if cg.exists():
            found.append(f"cgroup {cg}")
        if ETC_NETNS.is_dir():
            found += [
                f"/etc/netns/{e.name}"
                for e in ETC_NETNS.iterdir()
                if e.name.startswith(cluster_netns_prefix(self.name))
            ]
        pins = bpffs.LOCAL_ROOT / self.name
        if pins.exists():
            found.append(f"pinned BPF objects {pins}")
        if not list_clusters() and bpffs.LOCAL_ROOT.exists():
            found.append(f"nodemesh's bpffs {bpffs.LOCAL_ROOT} after the last cluster")
        state = StateDir(self.name)
        if state.path.exists():
            found.append(f"state dir {state.path}")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"nodemesh.local.runtime" in cmdline and self.name.encode() in cmdline:
                    found.append(f"runtime process {entry.name}")
        return found

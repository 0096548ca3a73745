"""A stunnel4 mTLS pair on the same pod-to-pod paths: the C tunnel a user might pick instead.

Each server pod gets a stunnel terminating mutual TLS 1.3 in front of its echo (7000) and iperf3
(5201) servers; the client pod gets one originating it, listening on loopback. Certificates come
from a CA made for the run (ECDSA P-256, like the mesh's), so both tunnels do the same crypto.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from controller.ca import CertificateAuthority
from nodemesh import controlplane
from nodemesh.identity import SpiffeId
from nodemesh.local.launch import launch_argv

TLS = "sslVersionMin = TLSv1.3\nverifyChain = yes\n"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _identity(ca: CertificateAuthority, directory: Path, name: str) -> Path:
    key = controlplane.new_key()
    issued = ca.sign_csr(
        controlplane.csr_pem(key).encode(), SpiffeId(ca.trust_domain, "bench", name)
    )
    path = directory / f"{name}.pem"
    _write_private(path, controlplane.key_pem(key) + issued.chain_pem)
    return path


class StunnelPair:
    """Start with `start(client_pod, {label: server_pod})`; `ports[label]` = (echo, iperf)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = CertificateAuthority.load_or_create(directory / "ca", "cluster.local")
        self.bundle = directory / "bundle.pem"
        self.bundle.write_bytes(self.ca.trust_bundle_pem())
        self.procs: list[subprocess.Popen] = []
        self.ports: dict[str, tuple[int, int]] = {}

    def _run(self, pod: dict, name: str, services: str, cert: Path) -> None:
        conf = self.dir / f"{name}.conf"
        conf.write_text(
            f"foreground = yes\npid =\ncert = {cert}\nCAfile = {self.bundle}\n{TLS}{services}"
        )
        box = pod["sandbox"]
        argv = launch_argv(sys.executable, box["netns"], ["stunnel4", str(conf)])
        with open(self.dir / f"{name}.log", "wb") as log:  # the child keeps its own copy
            self.procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log))

    def start(self, client: dict, servers: dict[str, dict]) -> None:
        client_cert = _identity(self.ca, self.dir, "client")
        client_services = ""
        for i, (label, pod) in enumerate(sorted(servers.items())):
            ip = pod["status"]["podIP"]
            self._run(
                pod,
                f"server{i}",
                "[echo]\naccept = 0.0.0.0:17000\nconnect = 127.0.0.1:7000\n"
                "[iperf]\naccept = 0.0.0.0:15201\nconnect = 127.0.0.1:5201\n",
                _identity(self.ca, self.dir, f"server{i}"),
            )
            echo, iperf = 27000 + i, 25200 + i
            client_services += (
                f"[echo{i}]\nclient = yes\naccept = 127.0.0.1:{echo}\n"
                f"connect = {ip}:17000\n[iperf{i}]\nclient = yes\n"
                f"accept = 127.0.0.1:{iperf}\nconnect = {ip}:15201\n"
            )
            self.ports[label] = (echo, iperf)
        self._run(client, "client", client_services, client_cert)
        time.sleep(1.0)  # stunnel binds at start-up; there is no readiness signal to wait on
        for proc in self.procs:
            if proc.poll() is not None:
                raise SystemExit(f"stunnel exited: see {self.dir}/*.log")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)

"""Readiness, liveness and startup probes, run from the pod's node like the kubelet runs them.

TCP and HTTP probes open their socket inside the node's network namespace (netns.socket_in_netns)
and connect to the pod's address; exec probes run the command inside the pod through the launcher.
Each returns (ok, detail) so a failing probe can be shown to the user with its reason.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from nodemesh.local import netns
from nodemesh.local.addressing import PROBE_SOURCE
from nodemesh.local.launch import launch_argv
from nodemesh.local.workloads import resolve_target_port


async def _connect(node_netns: str, ip: str, port: int, timeout: float):
    sock = await asyncio.to_thread(netns.socket_in_netns, node_netns, socket.AF_INET)
    try:
        sock.bind((PROBE_SOURCE, 0))  # exempt from inbound capture: the app answers, not the mesh
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (ip, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def tcp_probe(node_netns: str, ip: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        _reader, writer = await _connect(node_netns, ip, port, timeout)
    except (OSError, TimeoutError) as exc:
        return False, f"tcp {ip}:{port}: {exc.__class__.__name__} {exc}".strip()
    writer.close()
    return True, f"tcp {ip}:{port} open"


async def http_probe(
    node_netns: str, ip: str, port: int, path: str, timeout: float
) -> tuple[bool, str]:
    try:
        reader, writer = await _connect(node_netns, ip, port, timeout)
    except (OSError, TimeoutError) as exc:
        return False, f"http {ip}:{port}{path}: {exc.__class__.__name__} {exc}".strip()
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: nodemesh-probe\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError) as exc:
        return False, f"http {ip}:{port}{path}: {exc.__class__.__name__}"
    finally:
        writer.close()
    parts = line.split()
    code = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    return 200 <= code < 400, f"http {ip}:{port}{path}: status {code or 'unreadable'}"


async def exec_probe(pod_netns: str, cgroup: str, cmd: list[str], timeout: float):
    argv = launch_argv(sys.executable, pod_netns, cmd, cgroup=cgroup)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        code = await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"exec {cmd[0]}: timed out after {timeout:g}s"
    return code == 0, f"exec {cmd[0]}: exit {code}"


async def run_probe(probe: dict, *, node_netns, pod_ip, pod_netns, cgroup, containers):
    timeout = float(probe.get("timeoutSeconds", 1))
    if "exec" in probe:
        return await exec_probe(pod_netns, cgroup, list(probe["exec"]["command"]), timeout)
    spec = probe.get("tcpSocket") or probe.get("httpGet") or {}
    port = resolve_target_port(spec.get("port"), containers)
    if port is None:
        return False, f"probe port {spec.get('port')!r} names no container port"
    if "httpGet" in probe:
        return await http_probe(node_netns, pod_ip, port, spec.get("path", "/"), timeout)
    return await tcp_probe(node_netns, pod_ip, port, timeout)

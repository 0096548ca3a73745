"""The plugin executable's body: one CNI call → at most one agent exchange → stdout and exit code.

Decisions per command (the module docstring of node_agent.cni says why):
- ADD: excluded namespace or not a Kubernetes pod → pass prevResult through. Otherwise find the
  cgroup, send "add", pass prevResult through when the agent says ok; agent unreachable or slow
  → 11 (the runtime retries; the pod does not start uncaptured).
- DEL: send "del" when the agent can be reached; succeed regardless.
- CHECK: excluded → ok; otherwise the agent must say captured (or not enrolled).
- STATUS: ok when the agent answers; 50 otherwise. GC: forward the valid ids, succeed anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from typing import BinaryIO

from node_agent.cni import cgroup, protocol, wire
from node_agent.cni.protocol import CniError, CniRequest, Code


class AgentUnreachable(OSError):
    """The agent's socket did not answer: no agent on this node yet, or it is restarting."""


def call_agent(socket_path: str, request: wire.Request, timeout: float) -> wire.Reply:
    """One request, one reply over the agent's unix socket (node_agent.cni.wire)."""
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(wire.frame(request.to_json()))
            header = _read_exactly(sock, wire.HEADER.size, deadline)
            body = _read_exactly(sock, wire.body_length(header), deadline)
    except OSError as exc:
        raise AgentUnreachable(f"node agent at {socket_path}: {exc}") from exc
    return wire.Reply.from_json(wire.decode_body(body))


def _read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < size:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the agent closed the connection before answering")
        data += chunk
    return bytes(data)


def pod_info(request: CniRequest, with_cgroup: bool) -> wire.PodInfo:
    pod = request.pod
    assert pod is not None and request.config is not None
    cgroup_dir = ""
    if with_cgroup:
        try:
            cgroup_dir, _how = cgroup.find_pod_cgroup(
                pod.uid, request.netns, request.config.cgroup_roots
            )
        except cgroup.CgroupNotFound as exc:
            raise CniError(Code.NO_CGROUP, str(exc), version=request.version) from exc
    return wire.PodInfo(
        namespace=pod.namespace,
        name=pod.name,
        uid=pod.uid,
        container_id=request.container_id,
        netns=request.netns,
        ifname=request.ifname,
        ips=protocol.pod_ips(request.config.prev_result),
        cgroup=cgroup_dir,
    )


def _ask(request: CniRequest, message: wire.Request) -> wire.Reply:
    """The agent's reply; 11 when it cannot be reached (fail closed: the runtime retries)."""
    config = request.config
    assert config is not None
    try:
        return call_agent(config.agent_socket, message, config.timeout)
    except (AgentUnreachable, wire.WireError) as exc:
        raise CniError(
            Code.TRY_AGAIN_LATER,
            f"cannot reach the nodemesh agent: {exc}",
            "is the nodemesh node agent running on this node? the pod starts once it answers",
            request.version,
        ) from exc


def _skipped(request: CniRequest) -> bool:
    """Pods the mesh never touches: no Kubernetes identity, or an excluded namespace."""
    pod = request.pod
    return pod is None or pod.namespace in request.config.exclude_namespaces


def handle(request: CniRequest) -> bytes:
    """The stdout of a successful call; raises CniError for a failed one."""
    config = request.config
    if request.command == "VERSION":
        return protocol.version_result(request.version)
    assert config is not None
    if request.command == "ADD":
        if not _skipped(request):
            reply = _ask(request, wire.Request("add", pod_info(request, with_cgroup=True)))
            if not reply.ok:
                raise CniError(reply.code or Code.AGENT_REFUSED, reply.msg, "", request.version)
        return protocol.add_result(config)
    if request.command == "DEL":
        if not _skipped(request):
            # DEL must succeed as far as possible: the agent forgets the pod on its own too.
            with contextlib.suppress(AgentUnreachable, wire.WireError):
                call_agent(
                    config.agent_socket,
                    wire.Request("del", pod_info(request, with_cgroup=False)),
                    config.timeout,
                )
        return b""
    if request.command == "CHECK":
        if not _skipped(request):
            reply = _ask(request, wire.Request("check", pod_info(request, with_cgroup=False)))
            if not reply.ok:
                raise CniError(reply.code or Code.NOT_CAPTURED, reply.msg, "", request.version)
        return b""
    if request.command == "STATUS":
        try:
            call_agent(config.agent_socket, wire.Request("status"), config.timeout)
        except (AgentUnreachable, wire.WireError) as exc:
            raise CniError(
                Code.PLUGIN_NOT_AVAILABLE, str(exc), "start the node agent", request.version
            ) from exc
        return b""
    # GC: the agent drops sandboxes the runtime no longer has; nothing to do if it is away.
    with contextlib.suppress(AgentUnreachable, wire.WireError):
        call_agent(
            config.agent_socket,
            wire.Request("gc", valid_container_ids=config.valid_attachments),
            config.timeout,
        )
    return b""


def run(env: dict[str, str], stdin: bytes, stdout: BinaryIO) -> int:
    """The whole call: parse, handle, answer; the exit code."""
    request = None
    try:
        request = protocol.parse(env, stdin)
        out, code = handle(request), 0
    except CniError as exc:
        out, code = protocol.error_result(exc), 1
        _log(request, env, f"error {exc.code}: {exc.msg}")
    else:
        _log(request, env, "ok")
    stdout.write(out)
    stdout.flush()
    return code


def _log(request: CniRequest | None, env: dict[str, str], outcome: str) -> None:
    """One JSON line per call in the config's logFile (the runtime swallows stderr)."""
    path = request.config.log_file if request is not None and request.config else ""
    if not path:
        return
    line = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": env.get("CNI_COMMAND", ""),
        "container": env.get("CNI_CONTAINERID", ""),
        "args": env.get("CNI_ARGS", ""),
        "outcome": outcome,
    }
    try:
        with open(path, "a") as fh:
            fh.write(json.dumps(line) + "\n")
    except OSError as exc:
        sys.stderr.write(f"nodemesh-cni: cannot write log {path}: {exc}\n")


def main() -> int:
    return run(dict(os.environ), sys.stdin.buffer.read(), sys.stdout.buffer)

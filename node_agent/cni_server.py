"""The agent's end of the CNI plugin's socket: sandboxes in, "capture is in place" out.

The plugin (node_agent.cni) sends one framed request per connection (node_agent.cni.wire). An ADD
is answered only when it is true that the pod is captured, so the runtime starts the pod's
containers into a mesh that already holds them:

1. wait (bounded by ADD_WAIT) until the controller's config names the pod. Kubernetes runs CNI
   before it publishes the pod's IP, so the controller sends a scheduled pod as a pending
   workload with no address (controller.translate); the sandbox supplies the address;
2. record the sandbox (node_agent.sandboxes) and wake the agent's reconcile;
3. wait until the agent has enrolled the pod (capture attached), or answer at once when the
   config does not enroll it (its sandbox is still kept: a namespace label may enroll it live).
Either wait running out → code 11, and the runtime retries the ADD.

DEL forgets the sandbox (the agent then removes capture) and always succeeds; CHECK answers
from the agent's own pods; GC forgets CNI sandboxes the runtime no longer lists. `CniService` is
the decision logic over three agent hooks (its config, its captured pods, a wake-up); `serve` is
the asyncio unix-socket shell around it, and `adopt_loop` adopts pods running since before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from controller.model import Workload
from node_agent import sandboxes
from node_agent.cni import cgroup as cni_cgroup
from node_agent.cni import wire
from node_agent.cni.protocol import Code
from node_agent.sandboxes import SandboxStore

log = logging.getLogger("nodemesh.agent.cni")

ADD_WAIT = 10.0  # seconds an ADD waits for the config, then for capture (plugin's limit: 15 s)
DEL_WAIT = 5.0  # seconds a DEL waits for capture to go (it succeeds either way)
POLL = 0.05
ADOPT_EVERY = 5.0


class CniService:
    """The answers to the plugin's requests; I/O-free except for the waits on the agent."""

    def __init__(
        self,
        store: SandboxStore,
        local: Callable[[], Mapping[str, Workload]],
        captured: Callable[[str], bool],
        wake: Callable[[], None],
        add_wait: float = ADD_WAIT,
    ) -> None:
        self.store = store
        self.local = local  # the controller's workloads of this node, by uid
        self.captured = captured  # uid → capture in place for it
        self.wake = wake  # ask the agent to reconcile now
        self.add_wait = add_wait

    async def handle(self, request: wire.Request) -> wire.Reply:
        if request.op == "add":
            return await self.add(request.pod)
        if request.op == "del":
            return await self.delete(request.pod)
        if request.op == "check":
            return self.check(request.pod)
        if request.op == "gc":
            stale = self.store.keep_only(request.valid_container_ids)
            if stale:
                self.wake()
            return wire.Reply(True, msg=f"forgot {len(stale)} sandbox(es)")
        return wire.Reply(True, msg="ready")  # status: answering is being ready

    async def add(self, pod: wire.PodInfo) -> wire.Reply:
        deadline = time.monotonic() + self.add_wait
        workload = await _until(lambda: sandboxes.resolve(self.local(), pod), deadline)
        if workload is None:
            return wire.Reply(
                False,
                code=Code.TRY_AGAIN_LATER,
                msg=f"the controller's config does not name pod {_name(pod)} on this node yet "
                f"(after {self.add_wait:.0f}s): is the controller up, and the pod scheduled here?",
            )
        self.store.put(sandboxes.from_cni(workload, pod))
        self.wake()
        if not workload.enrolled:
            log.info("CNI ADD %s: not enrolled; sandbox kept", _name(pod))
            return wire.Reply(True, enrolled=False, msg="not enrolled")
        if not await _until(lambda: self.captured(workload.uid), deadline):
            return wire.Reply(
                False,
                enrolled=True,
                code=Code.TRY_AGAIN_LATER,
                msg=f"capture of {_name(pod)} is not in place after {self.add_wait:.0f}s; "
                "see the agent's log for why",
            )
        log.info("CNI ADD %s: captured", _name(pod))
        return wire.Reply(True, enrolled=True, captured=True, msg="captured")

    async def delete(self, pod: wire.PodInfo) -> wire.Reply:
        gone = self.store.remove(pod.uid, pod.container_id)
        if gone is None:
            return wire.Reply(True, msg="no such sandbox (already deleted)")
        self.wake()
        config = self.local().get(gone.uid)
        still_named = config is not None and config.netns  # local mode: the config captures it
        if not still_named:
            await _until(lambda: not self.captured(gone.uid), time.monotonic() + DEL_WAIT)
        log.info("CNI DEL %s", _name(pod))
        return wire.Reply(True, captured=self.captured(gone.uid), msg="deleted")

    def check(self, pod: wire.PodInfo) -> wire.Reply:
        workload = sandboxes.resolve(self.local(), pod)
        if workload is None:
            return wire.Reply(False, code=Code.NOT_CAPTURED, msg=f"no config for {_name(pod)}")
        if not workload.enrolled:
            return wire.Reply(True, enrolled=False, msg="not enrolled")
        if self.captured(workload.uid):
            return wire.Reply(True, enrolled=True, captured=True, msg="captured")
        return wire.Reply(
            False, enrolled=True, code=Code.NOT_CAPTURED, msg=f"{_name(pod)} is not captured"
        )


def _name(pod: wire.PodInfo) -> str:
    return f"{pod.namespace}/{pod.name}"


async def _until(probe: Callable, deadline: float):
    """probe()'s first truthy value before `deadline`, else that falsy value."""
    while True:
        value = probe()
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(POLL)


# --- the socket -----------------------------------------------------------------------------------


async def serve(path: str, service: CniService) -> asyncio.AbstractServer:
    """Listen on the unix socket `path` (0600: only root on the node talks to the agent)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a previous agent's socket: nobody listens on it any more

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await _one_request(reader, service)
            writer.write(wire.frame(reply.to_json()))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("CNI plugin went away before its answer: %s", exc)
        finally:
            writer.close()

    server = await asyncio.start_unix_server(connection, path)
    os.chmod(path, 0o600)
    return server


async def _one_request(reader: asyncio.StreamReader, service: CniService) -> wire.Reply:
    try:
        header = await reader.readexactly(wire.HEADER.size)
        body = await reader.readexactly(wire.body_length(header))
        request = wire.Request.from_json(wire.decode_body(body))
    except wire.WireError as exc:
        return wire.Reply(False, code=Code.DECODE_FAILURE, msg=f"bad request: {exc}")
    try:
        return await service.handle(request)
    except Exception as exc:  # one bad request must not take the socket down
        log.exception("CNI %s failed", request.op)
        return wire.Reply(False, code=Code.TRY_AGAIN_LATER, msg=f"agent error: {exc}")


async def adopt_loop(service: CniService) -> None:
    """Every ADOPT_EVERY seconds: sandboxes for enrolled pods running since before the plugin."""
    while True:
        missing = sandboxes.needs_adoption(
            service.local(), service.store.by_uid, service.store.deleted
        )
        if missing:
            found = await asyncio.to_thread(adopt, missing)
            for sandbox in found:
                log.info("adopted %s/%s in %s", sandbox.namespace, sandbox.name, sandbox.netns)
                service.store.put(sandbox)
            if found:
                service.wake()
        await asyncio.sleep(ADOPT_EVERY)


def adopt(missing: list[Workload]) -> list[sandboxes.Sandbox]:
    """The sandboxes of `missing` found on this node (thin I/O over node_agent.sandboxes)."""
    mount = cni_cgroup.cgroup2_mount(Path("/proc/mounts").read_text())
    if mount is None:
        return []
    views, own = sandboxes.scan_netns(), sandboxes.own_netns()
    found = []
    for workload in missing:
        view = sandboxes.choose(views, workload, own)
        if view is not None:
            found.append(sandboxes.adopted(view, workload, mount))
    return found

"""The plugin ↔ agent messages on the agent's CNI socket, sans-I/O.

One request and one reply per connection, each a frame: a 4-byte big-endian length, then that
many bytes of UTF-8 JSON holding one object. Length-prefixed JSON rather than HTTP because both
ends are ours, the plugin must start fast with the standard library only, and a frame is either
complete or an error (no chunking, no keep-alive to get wrong).

Requests (plugin → agent): {"op": "add" | "del" | "check" | "status" | "gc", ...}
- add/del/check carry "pod": {namespace, name, uid, containerId, netns, ifname, ips, cgroup};
- gc carries "validContainerIds": the sandboxes the runtime still has.
Reply (agent → plugin): {"ok": bool, "enrolled": bool, "captured": bool, "code": int, "msg": str};
`code` is a CNI error code (protocol.Code) when ok is false, and `msg` says why.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 20  # far above any real message; a larger length is a broken or hostile peer
OPS = ("add", "del", "check", "status", "gc")


class WireError(ValueError):
    """A frame or message that breaks this module's format (the peer is to blame)."""


@dataclass(frozen=True)
class PodInfo:
    """A sandbox as the plugin reports it."""

    namespace: str  # K8S_POD_NAMESPACE
    name: str  # K8S_POD_NAME
    uid: str  # K8S_POD_UID, or "" when the runtime passed none
    container_id: str  # CNI_CONTAINERID: the sandbox; DEL and GC name it
    netns: str  # CNI_NETNS: path of the pod's network namespace
    ifname: str = "eth0"  # CNI_IFNAME
    ips: tuple[str, ...] = ()  # from prevResult, without prefix lengths
    cgroup: str = ""  # absolute cgroup v2 directory of the pod (node_agent.cni.cgroup)

    def to_json(self) -> dict:
        data = asdict(self)
        data["containerId"] = data.pop("container_id")
        data["ips"] = list(self.ips)
        return data

    @classmethod
    def from_json(cls, data: object) -> PodInfo:
        if not isinstance(data, dict):
            raise WireError("'pod' must be an object")
        texts = {key: data.get(key, "") for key in ("namespace", "name", "uid", "netns", "cgroup")}
        texts["container_id"] = data.get("containerId", "")
        texts["ifname"] = data.get("ifname", "eth0")
        for key, value in texts.items():
            if not isinstance(value, str):
                raise WireError(f"pod.{key} must be a string")
        if not texts["namespace"] or not texts["name"] or not texts["container_id"]:
            raise WireError("pod.namespace, pod.name and pod.containerId are required")
        ips = data.get("ips", [])
        if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
            raise WireError("pod.ips must be a list of strings")
        return cls(**texts, ips=tuple(ips))


@dataclass(frozen=True)
class Request:
    op: str  # one of OPS
    pod: PodInfo | None = None  # add, del, check
    valid_container_ids: tuple[str, ...] = ()  # gc

    def to_json(self) -> dict:
        data: dict = {"op": self.op}
        if self.pod is not None:
            data["pod"] = self.pod.to_json()
        if self.op == "gc":
            data["validContainerIds"] = list(self.valid_container_ids)
        return data

    @classmethod
    def from_json(cls, data: dict) -> Request:
        op = data.get("op")
        if op not in OPS:
            raise WireError(f"op {op!r} is not one of {', '.join(OPS)}")
        pod = PodInfo.from_json(data.get("pod")) if op in ("add", "del", "check") else None
        valid = data.get("validContainerIds", [])
        if not isinstance(valid, list) or not all(isinstance(v, str) for v in valid):
            raise WireError("validContainerIds must be a list of strings")
        return cls(op, pod, tuple(valid))


@dataclass(frozen=True)
class Reply:
    ok: bool
    enrolled: bool = False  # the controller's config enrolls this pod
    captured: bool = False  # capture is in place for it
    code: int = 0  # CNI error code when not ok
    msg: str = ""  # why (or what was done)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("extra")
        return data | self.extra

    @classmethod
    def from_json(cls, data: dict) -> Reply:
        ok, code, msg = data.get("ok"), data.get("code", 0), data.get("msg", "")
        if not isinstance(ok, bool) or not isinstance(code, int) or not isinstance(msg, str):
            raise WireError("a reply needs ok (bool), code (int) and msg (string)")
        return cls(ok, bool(data.get("enrolled")), bool(data.get("captured")), code, msg)


def frame(message: dict) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise WireError(f"message of {len(body)} bytes is over the {MAX_FRAME}-byte limit")
    return HEADER.pack(len(body)) + body


def body_length(header: bytes) -> int:
    """The length announced by a frame's 4-byte header."""
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise WireError(f"frame of {length} bytes announced; the limit is {MAX_FRAME}")
    return length


def decode_body(body: bytes) -> dict:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"frame is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise WireError("a frame holds one JSON object")
    return value


class FrameReader:
    """Bytes in, complete messages out (for a reader that gets data in arbitrary pieces)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> list[dict]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER.size:
            length = body_length(bytes(self._buffer[: HEADER.size]))
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            messages.append(decode_body(bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return messages
